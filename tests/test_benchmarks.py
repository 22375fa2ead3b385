"""The benchmark scripts run end to end on CPU (their figures are read by people, not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_its_cpu_path_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                           "--device", "cpu", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    table = out.read_text()
    for row in ("TransUNet train step", "IMAN inference", "MMG k75 gaussian"):
        assert row in table
    assert "max diff" in table and "FAIL" not in table


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                           "--out", str(tmp_path / "x.md")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no CUDA device" in proc.stderr
