"""One command on a GPU machine: the rehearsal of config/paper.yaml on CUDA, bf16 against fp32.

    .venv/bin/python benchmarks/gpu_rehearsal.py [--only transunet.paper ...] [--pretrained]

Runs ``iman rehearse`` twice at the configured geometry (320 px, T = 5, batch 16), once with
``train.amp: true`` (bf16 autocast) and once with fp32, on a small phantom unless
``results/data`` is prepared, and prints per kind: seconds per training step, peak CUDA
memory (``max_memory_allocated`` / ``max_memory_reserved``) in each precision, the bf16
speed-up, and whether the kind fits a 24, 40 and 80 GB card at batch 16 (reserved memory
plus 10 % for the CUDA context and fragmentation; a kind that does not fit needs gradient
accumulation or a smaller batch there). Random initialisation unless ``--pretrained`` (the
ImageNet files must then be in ``$IMAN_WEIGHTS_DIR``): the step cost is the same. Record the
figures in docs/performance.md. Writes under ``results/gpu_rehearsal/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CARDS_GB = (24, 40, 80)
CONTEXT = 1.10


def run(amp: bool, out: str, only: list[str], pretrained: bool, steps: int) -> pd.DataFrame:
    """One rehearsal of the paper config; its resources.csv (failures included)."""
    cmd = [sys.executable, "-m", "iman.cli", "rehearse", "--configfile",
           str(ROOT / "config" / "paper.yaml"), "--directory", str(ROOT), "--steps", str(steps),
           "--config", f"results={out}", f'train={{"amp": {str(amp).lower()}}}',
           f'model={{"pretrained": {str(pretrained).lower()}}}']
    if only:
        cmd += ["--only", *only]
    print("$", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    print(f"exit status {rc}", flush=True)
    return pd.read_csv(ROOT / out / "rehearsal" / "resources.csv")


def report(bf16: pd.DataFrame, fp32: pd.DataFrame) -> pd.DataFrame:
    """Per kind: step times, peak memory in both precisions, speed-up, fits per card."""
    cols = ["kind", "status", "device", "batch_size", "params", "s_per_step",
            "cuda_max_allocated_mb", "cuda_max_reserved_mb", "rss_peak_mb"]
    df = bf16[cols].merge(fp32[cols], on="kind", suffixes=("_bf16", "_fp32"), how="outer")
    df["speedup_bf16"] = df["s_per_step_fp32"] / df["s_per_step_bf16"]
    need = df[["cuda_max_reserved_mb_bf16", "cuda_max_reserved_mb_fp32"]].max(axis=1)
    for gb in CARDS_GB:
        df[f"fits_{gb}gb_bf16"] = df["cuda_max_reserved_mb_bf16"] * CONTEXT <= gb * 1024
        df[f"fits_{gb}gb_fp32"] = need * CONTEXT <= gb * 1024
    return df


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="kinds whose key starts so")
    parser.add_argument("--pretrained", action="store_true", help="start from the cache")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per kind")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_rehearsal: no CUDA device is visible; run it on a GPU machine "
              "(the CPU rehearsal is `iman rehearse`)", file=sys.stderr)
        return 2
    bf16 = run(True, "results/gpu_rehearsal/bf16", args.only, args.pretrained, args.steps)
    fp32 = run(False, "results/gpu_rehearsal/fp32", args.only, args.pretrained, args.steps)
    df = report(bf16, fp32)
    out = ROOT / "results" / "gpu_rehearsal" / "compare.csv"
    df.to_csv(out, index=False)
    pd.set_option("display.width", 250)
    show = ["kind", "s_per_step_bf16", "s_per_step_fp32", "speedup_bf16",
            "cuda_max_reserved_mb_bf16", "cuda_max_reserved_mb_fp32",
            *[f"fits_{gb}gb_bf16" for gb in CARDS_GB]]
    print(df[show].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ndevice: {bf16['device'].dropna().iloc[0] if bf16['device'].notna().any() else '?'}"
          f"; batch {int(bf16['batch_size'].max())}; written {out}")
    failed = df[(df["status_bf16"] != "ok") | (df["status_fp32"] != "ok")]
    for kind in failed["kind"]:
        print(f"FAILED: {kind} (see results/gpu_rehearsal/*/rehearsal/summary.txt)")
    return 1 if len(failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
