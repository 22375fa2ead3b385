"""What one training process costs before and after its epochs, per method.

Each repeat starts a fresh Python process (as a Snakemake training job does) that imports the
trainer, builds the method's demo variant, trains one epoch on 8 random 64 px cases and
predicts them, then reports its own clock. The parent prints, per method, the median wall
time of the whole process, the time to the first epoch (interpreter + imports + build), the
epoch itself, and which heavy modules the process imported. The difference between the
process wall and the epoch is the per-job overhead that ``workflow_overhead.py`` sums over a
whole run; here it is measured alone, on an otherwise idle machine.

    .venv/bin/python benchmarks/job_startup.py                       # transunet unet dcnet
    .venv/bin/python benchmarks/job_startup.py --methods transunet --repeats 5

Run it with another checkout's interpreter (``/tmp/old/.venv/bin/python benchmarks/...``)
to compare two versions of the trainer on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch._dynamo", "torch._inductor", "torchvision", "timm", "pandas", "scipy")

CHILD = """
import json, sys, tempfile, time
t0 = time.perf_counter()
import torch
from iman.data.dataset import CaseArrays
from iman.models import get_entry
from iman.training.trainer import CheckpointFiles, TrainConfig, Trainer, predict_probs
method = sys.argv[1]
entry = get_entry(method)
modality = entry.modalities[0]
channels = {m: (1 if m == "us" else 5) for m in entry.consumed(modality)}
g = torch.Generator().manual_seed(0)
n = 8
data = CaseArrays([f"C{i}" for i in range(n)],
                  torch.randn(n, sum(channels.values()), 64, 64, generator=g),
                  (torch.rand(n, 1, 64, 64, generator=g) > 0.7).float(), None)
cfg = TrainConfig(model=method, variant="demo", in_channels=channels, img_size=64,
                  injection="gate_skips" if entry.gates_skips else "input_channel",
                  max_epochs=1, batch_size=4, seed=0, threads=1)
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(cfg, data, data, CheckpointFiles.in_dir(out))
    t1 = time.perf_counter()
    trainer.fit(progress=False)
    t2 = time.perf_counter()
    predict_probs(trainer.model, data, "cpu", 4)
print(json.dumps({"to_first_epoch": t1 - t0, "epoch": t2 - t1,
                  "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def run_once(method: str) -> dict[str, float | list[str]]:
    """One fresh process for ``method``: its wall time and its own clock."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + CHILD, method],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{method}: the training process failed:\n{proc.stderr[-2000:]}")
    return {"wall": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    """Print the median cost of a training process per method."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["transunet", "unet", "dcnet"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{'method':<11} {'process s':>9} {'to epoch s':>10} {'epoch s':>8} "
          f"{'overhead s':>10}  heavy imports")
    for method in args.methods:
        runs = [run_once(method) for _ in range(args.repeats)]
        med = {k: statistics.median(float(r[k]) for r in runs)
               for k in ("wall", "to_first_epoch", "epoch")}
        print(f"{method:<11} {med['wall']:>9.2f} {med['to_first_epoch']:>10.2f} "
              f"{med['epoch']:>8.2f} {med['wall'] - med['epoch']:>10.2f}  "
              f"{', '.join(runs[-1]['heavy']) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
