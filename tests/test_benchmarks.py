"""The benchmark scripts run end to end on CPU (their figures are read by people, not tests)."""

from __future__ import annotations

import json
import os
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


def test_job_startup_prints_one_row_per_method_with_its_imports() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "job_startup.py"),
                           "--methods", "transunet", "unet", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert set(rows) == {"transunet", "unet"}
    heavy = {m: {h.rstrip(",") for h in row[5:]} - {"-"} for m, row in rows.items()}
    # torch.optim and torch.use_deterministic_algorithms bring dynamo and the inductor to every
    # job (docs/performance.md, issue 20); a torch-only method brings nothing else ...
    assert heavy["transunet"] <= {"torch._dynamo", "torch._inductor"}
    assert "torchvision" in heavy["unet"]  # ... an smp one pulls in torchvision
    assert not {"pandas", "scipy"} & (heavy["transunet"] | heavy["unet"])  # jobs never do
    for row in rows.values():
        process, _, epoch, overhead = map(float, row[1:5])
        assert 0 < epoch < process and overhead == pytest.approx(process - epoch, abs=0.02)


@pytest.mark.slow
def test_weights_check_times_each_paper_file_and_the_start_up_check() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "weights_check.py"),
                           "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("resnet50-19c8e357.pth", "R50+ViT-B_16.npz", "swin_tiny_patch4_window7_224.pth",
                 "gluon_resnext101_32x4d-b253c8c4.pth"):
        assert name in proc.stdout
    assert "check_available" in proc.stdout


@pytest.mark.dag
def test_dag_build_prints_the_smoke_dry_run_and_compares_job_lists(tmp_path: Path) -> None:
    """benchmarks/dag_build.py on a 10-patient phantom: one row with the smoke DAG's job count,
    and ``--dump`` finds a tree's job list equal to itself (rule, wildcards, files, params)."""
    script = str(ROOT / "benchmarks" / "dag_build.py")
    common = ["--cases", "smoke", "--patients", "10", "--work", str(tmp_path / "work")]
    proc = subprocess.run([sys.executable, script, *common, "--repeats", "1"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    row = proc.stdout.splitlines()[1].split()
    assert row[0] == "smoke" and int(row[2]) > int(row[3]) > 0  # jobs > training jobs > 0
    dump = tmp_path / "jobs"
    proc = subprocess.run([sys.executable, script, *common, "--trees", str(ROOT), str(ROOT),
                           "--dump", str(dump)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stdout + proc.stderr
    jobs = json.loads(next(dump.glob("0-*-smoke.json")).read_text())
    train = [j for j in jobs if j["rule"] == "train"]
    assert train and all({"protocol", "fold", "margins_threshold"} <= set(j["params"])
                         for j in train)


def test_gpu_rehearsal_refuses_to_run_without_a_gpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_rehearsal.py")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
