"""How hard is the phantom? Train a plain UNet on US and on CEUS and print the test DSC.

Generates the default phantom into a temporary folder, reads it directly (PNG frames or MP4,
numeric frame order), resizes to the demo working size, splits by patient 60/20/20, and
trains ``smp.Unet('resnet18', encoder_weights=None)`` with Dice loss, AdamW 1e-3, batch 8,
horizontal/vertical flips. CEUS input = 5 frames around the middle, step 3 (the paper's rule).
The checkpoint with the best validation DSC is scored on the test patients.

    python benchmarks/phantom_difficulty.py --epochs 20 --repeats 3
    python benchmarks/phantom_difficulty.py --montage docs/phantom_montage.png
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch

from iman.data.phantom import generate

__all__ = ["load_sheet", "main", "middle_frames", "patient_split", "train_unet"]


def middle_frames(n_frames: int, count: int = 5, step: int = 3) -> list[int]:
    """The paper's frame rule: ``count`` frames centred on ``n_frames // 2``, ``step`` apart."""
    c = n_frames // 2
    half = (count - 1) // 2
    return [min(max(c + (i - half) * step, 0), n_frames - 1) for i in range(count)]


def _read_video(path: Path) -> list[np.ndarray]:
    """All frames of a CEUS video: a folder of numbered PNGs (numeric order) or an MP4."""
    if path.is_dir():
        files = sorted(path.glob("*.png"), key=lambda p: int(p.stem))
        return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def _crop(img: np.ndarray, box: str) -> np.ndarray:
    if not box:
        return img
    x0, y0, x1, y1 = (int(v) for v in box.split(","))
    return img[y0:y1, x0:x1]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def load_sheet(sheet: Path, size: int = 64) -> dict[str, dict[str, np.ndarray | str]]:
    """Read every case of a ``cases.csv`` into arrays at ``size``×``size``."""
    root = sheet.parent
    cases: dict[str, dict[str, np.ndarray | str]] = {}
    with sheet.open() as fh:
        for row in csv.DictReader(fh):
            frames = [_crop(f, row["ceus_crop"]) for f in _read_video(root / row["ceus"])]
            picks = middle_frames(len(frames))
            ceus = np.stack([_resize(frames[i], size) for i in picks]).astype(np.float32)
            us = _resize(cv2.imread(str(root / row["us_image"]), cv2.IMREAD_GRAYSCALE), size)
            masks = {}
            for key in ("us_mask", "ceus_mask"):
                m = cv2.imread(str(root / row[key]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
                masks[key] = (_resize(m / 255.0, size) >= 0.5).astype(np.float32)
            cases[row["case_id"]] = {
                "patient": row["patient_id"],
                "us": us[None].astype(np.float32) / 255.0,
                "ceus": ceus / 255.0,
                **masks,
            }
    return cases


def patient_split(patients: list[str], seed: int = 0,
                  ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> tuple[
                      set[str], set[str], set[str]]:
    """Shuffle the unique patients and cut them 60/20/20 (no patient in two sets)."""
    uniq = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(uniq))
    n_train = round(ratios[0] * len(uniq))
    n_val = round(ratios[1] * len(uniq))
    ids = [uniq[i] for i in order]
    return set(ids[:n_train]), set(ids[n_train:n_train + n_val]), set(ids[n_train + n_val:])


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    inter = float((pred * gt).sum())
    denom = float(pred.sum() + gt.sum())
    return 1.0 if denom == 0 else 2.0 * inter / denom


def train_unet(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
               x_te: np.ndarray, y_te: np.ndarray, epochs: int, seed: int) -> tuple[float, float]:
    """Train a plain UNet; return (test DSC at the best-val epoch, best val DSC)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=x_tr.shape[1], classes=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = smp.losses.DiceLoss("binary", from_logits=True)

    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return (model(torch.from_numpy(x)).numpy() > 0).astype(np.float32)

    def score(x: np.ndarray, y: np.ndarray) -> float:
        p = predict(x)
        return float(np.mean([_dice(p[i, 0], y[i, 0]) for i in range(len(x))]))

    best_val, best_test = -1.0, 0.0
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x_tr))
        for start in range(0, len(order), 8):
            idx = order[start:start + 8]
            xb, yb = x_tr[idx].copy(), y_tr[idx].copy()
            for j in range(len(idx)):
                if rng.random() < 0.5:
                    xb[j], yb[j] = xb[j][..., ::-1], yb[j][..., ::-1]
                if rng.random() < 0.5:
                    xb[j], yb[j] = xb[j][..., ::-1, :], yb[j][..., ::-1, :]
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            loss.backward()
            opt.step()
        val = score(x_va, y_va)
        if val > best_val:
            best_val, best_test = val, score(x_te, y_te)
    return best_test, best_val


def _arrays(cases: dict[str, dict[str, np.ndarray | str]], ids: list[str], modality: str
            ) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([cases[c][modality] for c in ids]).astype(np.float32)
    y = np.stack([cases[c][f"{modality}_mask"][None] for c in ids]).astype(np.float32)
    return x, y


def save_montage(sheet: Path, path: Path, n_cases: int = 4) -> None:
    """Figure for docs: US with core contour, three CEUS frames over time, both masks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = sheet.parent
    with sheet.open() as fh:
        rows = list(csv.DictReader(fh))[:n_cases]
    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 2.6 * len(rows)))
    for r, row in enumerate(rows):
        us = cv2.imread(str(root / row["us_image"]), cv2.IMREAD_GRAYSCALE)
        usm = cv2.imread(str(root / row["us_mask"]), cv2.IMREAD_GRAYSCALE) > 0
        cem = cv2.imread(str(root / row["ceus_mask"]), cv2.IMREAD_GRAYSCALE) > 0
        frames = [_crop(f, row["ceus_crop"]) for f in _read_video(root / row["ceus"])]
        n = len(frames)
        picks = [max(0, n // 5), n // 2, min(n - 1, (4 * n) // 5)]
        panels = [(us, f"{row['case_id']} US"),
                  *[(frames[k], f"CEUS frame {k}/{n}") for k in picks],
                  (usm, "US mask (core)"), (cem, "CEUS mask (core+infiltration)")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1 if img.dtype == bool else 255)
            if c == 0:
                ax.contour(usm, levels=[0.5], colors="lime", linewidths=0.6)
            if c == 2:
                ax.contour(cem, levels=[0.5], colors="red", linewidths=0.6)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    """Generate, train on US and CEUS, print the test DSCs and timings."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="phantom seed")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="training seeds per modality")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--side-by-side", action="store_true")
    ap.add_argument("--modality", choices=["us", "ceus", "both"], default="both")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="reuse/keep the phantom here instead of a temporary folder")
    ap.add_argument("--montage", type=Path, default=None, help="write the docs montage only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.data_dir if args.data_dir is not None else Path(tmp) / "phantom"
        sheet = out / "cases.csv"
        if not sheet.exists():
            t0, c0 = time.perf_counter(), time.process_time()
            sheet = generate(out, n_patients=args.patients, seed=args.seed,
                             side_by_side=args.side_by_side)
            print(f"generated {args.patients} patients in {time.perf_counter() - t0:.1f} s "
                  f"wall, {time.process_time() - c0:.1f} s CPU", flush=True)
        if args.montage is not None:
            save_montage(sheet, args.montage)
            print(f"montage -> {args.montage}")
            return
        cases = load_sheet(sheet, args.size)
    ids = sorted(cases)
    tr_p, va_p, _ = patient_split([str(cases[c]["patient"]) for c in ids], args.split_seed)
    split = {"train": [c for c in ids if cases[c]["patient"] in tr_p],
             "val": [c for c in ids if cases[c]["patient"] in va_p]}
    split["test"] = [c for c in ids if c not in split["train"] and c not in split["val"]]
    print("cases: " + ", ".join(f"{k} {len(v)}" for k, v in split.items()), flush=True)
    for modality in ("us", "ceus") if args.modality == "both" else (args.modality,):
        data = [a for part in ("train", "val", "test") for a in _arrays(cases, split[part],
                                                                         modality)]
        t0, c0 = time.perf_counter(), time.process_time()
        tests = [train_unet(*data, epochs=args.epochs, seed=r)[0] for r in range(args.repeats)]
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"{modality.upper():4s} test DSC {np.mean(tests):.3f} ± {np.std(tests):.3f} "
              f"(runs {', '.join(f'{v:.3f}' for v in tests)}; {args.epochs} epochs; "
              f"{dt:.0f} s wall, {dc:.0f} s CPU)", flush=True)


if __name__ == "__main__":
    main()
