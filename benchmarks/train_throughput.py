"""Training-step throughput per registered model and input size, and the data-wait share.

Prints one row per (model, variant, size, device): seconds per step, images per second and
the share of step time spent preparing the batch (indexing + paired augmentation), the
same code path as ``iman.training.trainer``.
Runs on CPU, and on CUDA when available (bf16 autocast).

    .venv/bin/python benchmarks/train_throughput.py --sizes 64 --variant demo
    .venv/bin/python benchmarks/train_throughput.py --models unet transunet --sizes 128 320
"""

from __future__ import annotations

import argparse
import time

import torch

from iman.data.dataset import Augment, augment_batch
from iman.models import all_entries, build_model, get_entry
from iman.training.losses import SegLoss


def bench(name: str, variant: str, size: int, device: str, batch: int, steps: int,
          channels: int, amp: bool = True) -> tuple[float, float]:
    """(seconds per step, data share) over ``steps`` steps after one warm-up step.

    ``amp``: bf16 autocast on CUDA (as the trainer; ignored on CPU). Peak CUDA memory is
    left in ``torch.cuda.max_memory_allocated()`` (reset here before the warm-up).
    """
    entry = get_entry(name)
    modality = entry.modalities[-1]
    in_ch = {m: (1 if m == "us" else channels) for m in entry.consumed(modality)}
    injection = "gate_skips" if entry.gates_skips else "input_channel"
    model = build_model(name, in_ch, size, variant, injection).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)  # the trainer's
    n = batch * 4
    x_all = torch.randn(n, sum(in_ch.values()), size, size)
    y_all = (torch.rand(n, 1, size, size) > 0.5).float()
    m_all = torch.rand(n, 1, size, size)
    gen, aug, loss_fn = torch.Generator().manual_seed(0), Augment(), SegLoss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    data_t = total_t = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        idx = torch.randperm(n, generator=gen)[:batch]
        x, y, m = augment_batch(x_all[idx], y_all[idx], m_all[idx], aug, gen)
        x, y, m = x.to(device), y.to(device), m.to(device)
        t1 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda"):
            out = model(x, m)
            loss = model.loss(out, y, loss_fn) if hasattr(model, "loss") else loss_fn(
                out["logits"] if isinstance(out, dict) else out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if step:  # skip warm-up
            data_t += t1 - t0
            total_t += t2 - t0
    return total_t / steps, data_t / total_t


def main() -> None:
    """Parse arguments, run every combination, print a table."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--variant", default="demo")
    ap.add_argument("--sizes", nargs="*", type=int, default=[64])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=5, help="CEUS channels")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    names = args.models or [e.name for e in all_entries()]
    print(f"{'model':<10} {'variant':<7} {'size':>4} {'device':<5} {'s/step':>8} "
          f"{'img/s':>8} {'data %':>7}")
    for name in names:
        for size in args.sizes:
            for device in devices:
                try:
                    sec, share = bench(name, args.variant, size, device, args.batch,
                                       args.steps, args.frames)
                except (RuntimeError, ValueError) as err:
                    print(f"{name:<10} {args.variant:<7} {size:>4} {device:<5} failed: {err}")
                    continue
                print(f"{name:<10} {args.variant:<7} {size:>4} {device:<5} {sec:>8.3f} "
                      f"{args.batch / sec:>8.1f} {100 * share:>6.1f}%", flush=True)


if __name__ == "__main__":
    main()
