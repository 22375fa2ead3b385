"""One-command GPU readiness check: training step fp32 vs bf16, IMAN inference, MMG on CUDA.

Runs unattended from a fresh clone (``make venv`` first), prints one markdown table and
writes it to ``results/benchmarks/gpu_check.md``; exits non-zero when a check fails (CUDA
absent when asked for, a non-finite loss, torch MMG differing from OpenCV). Sized for about
10 minutes on one GPU; ``--device cpu --quick`` runs the same code path on CPU in seconds
(the tests do that).

    .venv/bin/python benchmarks/gpu_check.py                      # on a GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick  # smoke check anywhere

Rows:
* TransUNet (paper variant, 320², batch 16) training step in fp32 and bf16 autocast:
  s/step, images/s, peak GPU memory, data-wait share (batch indexing + paired augmentation);
* IMAN inference per case (both branches + MMG), GPU vs CPU, ms per case;
* MMG: torch on the device vs OpenCV on CPU on the same predictions (ms per case, and the
  largest absolute difference of the margins).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import bench

from iman.margins.mmg import make_margins
from iman.models import build_model
from iman.paths import Paths


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gib(device: str) -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f}" if device == "cuda" else "-"


def _discs(n: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Soft disc probability maps (lesion-like predictions) of ``n`` cases."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = {}
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.1, 0.25) * size
        d = np.hypot(yy - cy, xx - cx) - r
        out[f"C{i:03d}"] = (1 / (1 + np.exp(d / 2))).astype(np.float32)
    return out


def iman_inference(device: str, variant: str, size: int, cases: int, frames: int) -> float:
    """ms per case for one IMAN loop step: US + CEUS branch forward and the MMG both ways."""
    # the paper protocol's ImageNet input: grey repeated to RGB (US 3, CEUS 3 x frames)
    us = build_model("transunet", {"us": 3}, size, variant, "gate_skips").to(device).eval()
    ce = build_model("transunet", {"ceus": 3 * frames}, size, variant,
                     "gate_skips").to(device).eval()
    x_us = torch.randn(cases, 3, size, size, device=device)
    x_ce = torch.randn(cases, 3 * frames, size, size, device=device)
    sizes = {f"C{i:03d}": (560, 460) for i in range(cases)}
    times = []
    for rep in range(3):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16,
                                             enabled=device == "cuda"):
            p_us = torch.sigmoid(us(x_us).float())[:, 0]
            p_ce = torch.sigmoid(ce(x_ce).float())[:, 0]
        preds_us = dict(zip(sizes, p_us.cpu().numpy()))
        preds_ce = dict(zip(sizes, p_ce.cpu().numpy()))
        m_us = make_margins(preds_ce, sizes, 75, "gaussian", 0.1, device)
        m_ce = make_margins(preds_us, sizes, 100, "mean", 0.1, device)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16,
                                             enabled=device == "cuda"):
            g_us = torch.stack([torch.from_numpy(m_us[c].astype(np.float32)) for c in sizes])
            g_ce = torch.stack([torch.from_numpy(m_ce[c].astype(np.float32)) for c in sizes])
            us(x_us, g_us[:, None].to(device))
            ce(x_ce, g_ce[:, None].to(device))
        _sync(device)
        if rep:  # the first repetition warms up kernels and allocators
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.mean(times)) / cases


def mmg_compare(device: str, size: int, cases: int) -> tuple[float, float, float]:
    """(ms/case OpenCV CPU, ms/case torch on ``device``, max |difference|)."""
    preds = _discs(cases, size)
    sizes = {c: (560, 460) for c in preds}
    t0 = time.perf_counter()
    ref = make_margins(preds, sizes, 75, "gaussian", 0.1, "cpu")
    t_cv = time.perf_counter() - t0
    make_margins(preds, sizes, 75, "gaussian", 0.1, device, backend="torch")  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    out = make_margins(preds, sizes, 75, "gaussian", 0.1, device, backend="torch")
    _sync(device)
    t_dev = time.perf_counter() - t0
    diff = max(float(np.abs(ref[c].astype(np.float32) - out[c].astype(np.float32)).max())
               for c in preds)
    return 1000 * t_cv / cases, 1000 * t_dev / cases, diff


def main(argv: list[str] | None = None) -> int:
    """Run every check, print and write the table; 1 on any failure."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="demo variant, 64 px, few steps")
    ap.add_argument("--out", type=Path,
                    default=Path(Paths().root) / "benchmarks" / "gpu_check.md")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (use --device cpu for the CPU path)",
              file=sys.stderr)
        return 1
    device = args.device
    variant, size, batch, steps = ("demo", 64, 2, 2) if args.quick else ("paper", 320, 16, 20)
    cases = 4 if args.quick else 64
    rows = [f"# GPU check ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, "
            f"torch {torch.__version__})", "",
            "| check | setting | s/step or ms/case | images/s | peak GiB | data-wait % | note |",
            "|---|---|---|---|---|---|---|"]
    failures = []
    for amp in (False, True) if device == "cuda" else (False,):  # autocast is CUDA-only
        # CEUS branch, 5 frames x RGB (the paper protocol's ImageNet input)
        sec, share = bench("transunet", variant, size, device, batch, steps, 15, amp=amp)
        if not np.isfinite(sec):
            failures.append(f"training step amp={amp}")
        label = "bf16 autocast" if amp and device == "cuda" else "fp32"
        rows.append(f"| TransUNet train step | {variant} {size}² b{batch} {label} | {sec:.4f} s"
                    f" | {batch / sec:.1f} | {_peak_gib(device)} | {100 * share:.1f} | |")
    for dev in dict.fromkeys([device, "cpu"]):
        ms = iman_inference(dev, variant, size, min(cases, 8 if dev == "cpu" else cases), 5)
        rows.append(f"| IMAN inference (2 branches + MMG) | {variant} {size}² on {dev} | "
                    f"{ms:.2f} ms | {1000 / ms:.1f} | - | - | per case |")
    cv_ms, dev_ms, diff = mmg_compare(device, size, cases)
    ok = diff < 2e-3  # float16 storage of both
    if not ok:
        failures.append(f"MMG torch vs OpenCV differ by {diff:.4f}")
    rows.append(f"| MMG k75 gaussian | OpenCV cpu vs torch {device}, {size}² | {cv_ms:.3f} vs "
                f"{dev_ms:.3f} ms | - | - | - | max diff {diff:.1e} {'ok' if ok else 'FAIL'} |")
    text = "\n".join(rows) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if failures:
        print("gpu_check FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
