"""Shared fixtures: run the real workflow on the smoke config in a temporary directory.

Tiers (markers, see docs/testing.md): ``dag`` tests run the project's Snakefile, ``slurm``
tests a real local SLURM cluster, ``browser`` tests headless Chromium, ``slow`` tests are long
without a DAG (overfitting, kill-and-resume). ``make test-fast`` runs none of them.

The smoke DAG is built once per session (:func:`smoke_run`). A test that only reads its
outputs takes ``smoke_run``; a test that changes anything (a config, an input file) takes
``smoke_copy``, a private copy of the finished run, and never touches the shared directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SMOKE_LOG = "smoke_run.log"
"""Snakemake's console output of the smoke run (beside ``results/``): every job it ran."""


FAST_TIER_EXCLUDES = ("dag", "slurm", "browser", "slow")
"""Markers ``make test-fast`` deselects; a test without any of them is in the fast tier."""
_running: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]  # the test whose fixtures and body run now


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _running.clear()


LONGEST_FIRST = ("test_overfit.py", "test_workflow.py", "test_slurm.py", "test_report_check.py",
                 "test_predict.py", "test_errors.py", "test_plugins.py", "test_weights.py",
                 "test_weight_content.py")
"""Files handed out first under ``pytest -n auto --dist loadfile`` (``make test``): the
longest, so none of them starts last on an otherwise idle worker."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest files first (a stable sort: the order within a file is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(it.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread per test process (and its subprocesses), as every training job
    has: no oversubscription next to Snakemake's jobs, and on 2 cores the fast tier runs
    faster than with torch's default (48 s vs 56 s). ``OMP_NUM_THREADS`` set by the caller
    wins."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def snakemake(workdir: Path, *args: str, config: str = "config/smoke.yaml",
              check: bool = True, timeout: float = 1800,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with ``workdir`` as working directory (``env`` added to
    the environment). Only from a test outside the fast tier (mark it ``dag``)."""
    if _running and not any(_running[0].get_closest_marker(m) for m in FAST_TIER_EXCLUDES):
        raise AssertionError(f"{_running[0].nodeid} runs the Snakefile: mark it "
                             "@pytest.mark.dag (docs/testing.md)")
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args, "--configfile", str(ROOT / config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a finished run in ``dst``: ``results/`` and Snakemake's
    ``.snakemake/`` metadata, real files (no links back into ``src``) with their mtimes, so
    Snakemake finds the copy as complete as the original."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("results", ".snakemake"):
        shutil.copytree(src / name, dst / name, symlinks=False, copy_function=shutil.copy2,
                        ignore=shutil.ignore_patterns("locks"))
    return dst


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole DAG (tables, figures, cost, report) on config/smoke.yaml, run once per
    session. Read-only for the tests: change things in ``smoke_copy``."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _build_smoke(tmp_path_factory.mktemp("smoke"))
    # pytest-xdist: the workers share one run, built by the first to ask, under a lock
    work = tmp_path_factory.getbasetemp().parent / "smoke"
    with open(tmp_path_factory.getbasetemp().parent / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = work / "FAILED"
        if failed.exists():
            raise AssertionError(f"the smoke DAG failed on another worker:\n{failed.read_text()}")
        if not (work / "DONE").exists():
            work.mkdir(exist_ok=True)
            try:
                _build_smoke(work)
            except BaseException as err:
                failed.write_text(str(err))
                raise
            (work / "DONE").touch()
    return work


def _build_smoke(work: Path) -> Path:
    """Run the smoke DAG and its report in ``work``; keep Snakemake's console output."""
    run = snakemake(work, "tables", "figures", "cost")
    (work / SMOKE_LOG).write_text(run.stdout + run.stderr)
    snakemake(work, "--report", str(work / "results" / "report.html"), "tables", "figures")
    return work


@pytest.fixture()
def smoke_copy(smoke_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished smoke run, for tests that change config or inputs."""
    return copy_run(smoke_run, tmp_path / "run")


PERTURBATION = 1e-7
"""Relative size of the perturbation of :func:`smoke_perturbed`: another CPU's rounding (and
the training noise it seeds) moves numbers by far more; 1e-7 is enough to move the 7th
significant digit, where a test that leans on a file's rounding breaks."""
PERTURB_KEEP = frozenset({"seed", "fold", "loop", "empty_pred", "epochs", "n_test"})
"""Float-typed columns that are counts, flags or keys, never perturbed."""


def perturb_csv(path: Path, sep: str = ",") -> int:
    """Move every float of a CSV/TSV by :data:`PERTURBATION` towards 0.5 (x' = x + ε·(0.5 − x)),
    in place: a number in [0, 1] stays in it and a non-negative one stays non-negative, so a
    physical bound holds while every digit from the 7th on changes. Returns the values moved."""
    import pandas as pd

    df = pd.read_csv(path, sep=sep, dtype={"case_id": str})
    moved = 0
    for col in df.columns:
        if col not in PERTURB_KEEP and df[col].dtype.kind == "f":
            df[col] = df[col] + PERTURBATION * (0.5 - df[col])
            moved += int(df[col].notna().sum())
    df.to_csv(path, sep=sep, index=False)
    return moved


def perturb_summary(path: Path) -> int:
    """:func:`perturb_csv` for the metric means of an experiment's ``summary.json``
    (``branches``: each branch's test means and stds, validation and test DSC by loop)."""
    import json

    def move(x: object) -> tuple[object, int]:
        if isinstance(x, float):
            return x + PERTURBATION * (0.5 - x), 1
        if isinstance(x, dict):
            items = {k: move(v) for k, v in x.items()}
            return {k: v for k, (v, _) in items.items()}, sum(n for _, n in items.values())
        return x, 0

    summary = json.loads(path.read_text())
    summary["branches"], moved = move(summary["branches"])
    path.write_text(json.dumps(summary, indent=1))
    return moved


@pytest.fixture(scope="session")
def smoke_perturbed(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the smoke run whose per-case metrics and job benchmarks were perturbed
    (:func:`perturb_csv`) and whose statistics, tables and cost table were then recomputed by
    the workflow itself (Snakemake re-runs what reads the changed files): the same run as if
    another machine's floats had produced it. The numeric assertions of the smoke DAG run on
    both (``smoke_numbers``), so a test whose tolerance leans on one machine's rounding fails
    here too."""
    work = copy_run(smoke_run, tmp_path_factory.mktemp("perturbed") / "run")
    results = work / "results"
    moved = sum(perturb_csv(f) for f in (results / "experiments").glob("*/per_case.csv"))
    moved += sum(perturb_summary(f) for f in (results / "experiments").glob("*/summary.json"))
    moved += sum(perturb_csv(f, "\t") for f in (results / "benchmarks").rglob("*.tsv"))
    assert moved > 0, "nothing to perturb in the smoke run"
    # the job benchmarks are a param of rule cost (written beside each job, not a rule
    # output), so a changed benchmark re-runs nothing by itself: force that one rule
    snakemake(work, "tables", "cost", "--forcerun", "cost")
    return work


@pytest.fixture(params=["as built", "perturbed"])
def smoke_numbers(request: pytest.FixtureRequest) -> Path:
    """The smoke run, then its perturbed copy (:func:`smoke_perturbed`): for the tests that
    check numbers the workflow wrote."""
    name = "smoke_run" if request.param == "as built" else "smoke_perturbed"
    return request.getfixturevalue(name)
