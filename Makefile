# The two commands of the README are the contract:
#   make tables   set up .venv (idempotent) and build Tables I-V, figures and the report
#   make test     set up .venv (idempotent), lint, and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 4
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --rerun-incomplete --printshellcmds

.PHONY: venv tables data report test test-fast lint clean

PLUGIN := examples/iman-plugin-example

# the example method plug-in is part of the test environment (tests/test_plugins.py)
$(STAMP): pyproject.toml $(PLUGIN)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q -e $(PLUGIN)
	touch $(STAMP)

venv: $(STAMP)

tables: $(STAMP)
	$(SNAKEMAKE) tables figures
	$(BIN)/snakemake --cores 1 --report results/report.html tables figures

data: $(STAMP)
	$(SNAKEMAKE) data

report: $(STAMP)
	$(BIN)/snakemake --cores 1 --report results/report.html tables figures

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

# Test tiers (docs/testing.md): markers dag (runs the project's Snakefile), slurm, browser,
# slow. `make test` runs every test (no marker filter, so it can never select nothing and end
# with pytest's exit code 5) after the linters, and prints the 25 slowest tests.
PYTEST := $(BIN)/python -m pytest -q
FAST   := not dag and not slurm and not browser and not slow

# make test spreads the test files over one worker per core (pytest-xdist, a file's tests
# on one worker, so its module fixtures, e.g. the overfit trainings, run once); the workers
# share one smoke DAG (tests/conftest.py: the first to need it builds it under a lock).
test: lint
	$(PYTEST) -n auto --dist loadfile --durations=25

test-fast: $(STAMP)
	$(PYTEST) -m "$(FAST)" --durations=10

clean:
	rm -rf results .snakemake
