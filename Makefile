# The two commands of the README are the contract:
#   make tables   set up .venv (idempotent) and build Tables I-V, figures and the report
#   make test     set up .venv (idempotent) and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 4
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --rerun-incomplete --printshellcmds

.PHONY: venv tables data report test test-fast lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "slow or not slow" -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not slurm and not browser"

clean:
	rm -rf results .snakemake
