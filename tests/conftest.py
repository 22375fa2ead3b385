"""Shared fixtures: run the real workflow on the smoke config in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(workdir: Path, *args: str, config: str = "config/smoke.yaml",
              check: bool = True, timeout: float = 1800,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with ``workdir`` as working directory (``env`` added to
    the environment)."""
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args, "--configfile", str(ROOT / config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole DAG (tables, figures, report) on config/smoke.yaml, run once per session."""
    work = tmp_path_factory.mktemp("smoke")
    snakemake(work, "tables", "figures", "cost")
    snakemake(work, "--report", str(work / "results" / "report.html"), "tables", "figures",
              check=True)
    return work
