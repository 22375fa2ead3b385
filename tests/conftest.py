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
                 "test_predict.py", "test_plugins.py", "test_weights.py", "test_weight_content.py")
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
