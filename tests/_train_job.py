"""A small training job run as a subprocess by the kill-and-resume tests."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from iman.data.dataset import CaseArrays
from iman.training.trainer import CheckpointFiles, TrainConfig, Trainer


def toy_data(n: int, seed: int) -> CaseArrays:
    """Discs on noise: deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ys, xs = [], []
    for _ in range(n):
        cy, cx, r = (torch.rand(3, generator=g) * torch.tensor([12, 12, 4]) + 10).tolist()
        y = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2).float()
        ys.append(y[None])
        xs.append((y * 1.5 + 0.7 * torch.randn(32, 32, generator=g))[None])
    return CaseArrays([f"C{i}" for i in range(n)], torch.stack(xs), torch.stack(ys), None)


def config(epochs: int) -> TrainConfig:
    """Tiny UNet, fixed seed, no early stopping."""
    return TrainConfig(model="unet", variant="demo", in_channels={"us": 1}, img_size=32,
                       max_epochs=epochs, batch_size=4, lr=1e-3, min_lr=1e-4, patience=100,
                       converge_eps=0.0, seed=0, threads=1)


if __name__ == "__main__":
    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    Trainer(config(epochs), toy_data(12, 0), toy_data(4, 1),
            CheckpointFiles.in_dir(out)).fit(progress=False)
