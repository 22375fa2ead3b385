"""Resuming torch.optim.AdamW: a saved state (also one written by the removed iman.optim
shim, same layout) continues bit for bit like an uninterrupted run."""

from __future__ import annotations

import torch
from torch import nn

from iman.data.dataset import CaseArrays
from iman.training.trainer import CheckpointFiles, TrainConfig, Trainer


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 1, 3),
                         nn.Flatten(), nn.Linear(16, 3))


def _steps(model: nn.Module, opt: torch.optim.Optimizer, n: int, start: int = 0) -> None:
    """``n`` steps on fixed data with a changing lr; the last layer is frozen on odd steps."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(4, 2, 8, 8, generator=g)
    for i in range(start, start + n):
        opt.param_groups[0]["lr"] = 1e-2 / (1 + i % 4)
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        if i % 2:
            for p in model[-1].parameters():
                p.grad = None
        opt.step()


def _adamw(model: nn.Module, lr: float = 1e-2, wd: float = 5e-4) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, foreach=True)


# the param-group keys the removed iman.optim.AdamW wrote into resume.pt
_SHIM_GROUP = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
               "capturable", "differentiable", "fused", "decoupled_weight_decay", "params")


def _continued(state: dict) -> nn.Module:
    """Five steps, ``state`` saved after them loaded into a fresh optimizer, five more."""
    half = _net()
    opt = _adamw(half)
    _steps(half, opt, 5)
    again = _adamw(half, lr=7.0, wd=0.0)  # the saved group wins over the constructor's
    again.load_state_dict(state(opt))
    assert again.param_groups[0]["weight_decay"] == 5e-4
    _steps(half, again, 5, start=5)
    return half


def test_resumed_adamw_equals_an_uninterrupted_run() -> None:
    ref = _net()
    _steps(ref, _adamw(ref), 10)
    for state in (lambda o: o.state_dict(),
                  lambda o: {**o.state_dict(), "param_groups": [
                      {k: o.state_dict()["param_groups"][0][k] for k in _SHIM_GROUP}]}):
        half = _continued(state)
        for a, b in zip(half.parameters(), ref.parameters(), strict=True):
            assert torch.equal(a, b)


def test_trainer_uses_torch_adamw_and_deterministic_kernels(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    data = CaseArrays([f"C{i}" for i in range(4)], torch.randn(4, 1, 32, 32, generator=g),
                      (torch.rand(4, 1, 32, 32, generator=g) > 0.7).float(), None)
    cfg = TrainConfig(model="unet", variant="demo", in_channels={"us": 1}, img_size=32,
                      max_epochs=1, batch_size=2, seed=0, threads=1)
    trainer = Trainer(cfg, data, data, CheckpointFiles.in_dir(tmp_path), device="cpu")
    assert type(trainer.opt) is torch.optim.AdamW
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
