"""iman.optim: AdamW equal to torch's bit for bit, and training processes without dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from iman.optim import AdamW


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 1, 3),
                         nn.Flatten(), nn.Linear(16, 3))


def _steps(model: nn.Module, opt: object, n: int, start: int = 0) -> None:
    """``n`` steps on fixed data with a changing lr; the last layer is frozen on odd steps
    (parameters without a gradient must be skipped, their state untouched)."""
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


@pytest.mark.parametrize("foreach", [True, None])
def test_adamw_updates_are_bit_identical_to_torch(foreach: bool | None) -> None:
    ours, ref = _net(), _net()
    _steps(ours, AdamW(ours.parameters(), lr=1e-2, weight_decay=5e-4, foreach=foreach), 12)
    _steps(ref, torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=5e-4,
                                  foreach=foreach), 12)
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(ours.parameters(), _net().parameters()))


def test_state_dicts_cross_load_and_continue_identically() -> None:
    """A resume state written by torch.optim.AdamW (older checkpoints) or by ours loads into
    ours, and the continued run equals an uninterrupted torch run."""
    ref = _net()
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=5e-4, foreach=True)
    _steps(ref, ref_opt, 10)

    half = _net()
    torch_opt = torch.optim.AdamW(half.parameters(), lr=1e-2, weight_decay=5e-4, foreach=True)
    _steps(half, torch_opt, 5)
    ours = AdamW(half.parameters(), lr=7.0, weight_decay=0.0, foreach=True)
    ours.load_state_dict(torch_opt.state_dict())
    assert ours.param_groups[0]["weight_decay"] == 5e-4
    saved = ours.state_dict()
    again = AdamW(half.parameters(), lr=1.0, foreach=True)
    again.load_state_dict(saved)
    _steps(half, again, 5, start=5)
    for a, b in zip(half.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    # and ours loads back into torch's
    back = torch.optim.AdamW(half.parameters(), lr=1.0)
    back.load_state_dict(again.state_dict())
    assert back.state_dict()["state"].keys() == again.state_dict()["state"].keys()


def test_a_state_for_another_model_is_refused() -> None:
    opt = AdamW(_net().parameters(), lr=1e-3)
    other = AdamW(nn.Linear(2, 2).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="2 parameters; this optimizer has 1 group and 8"):
        opt.load_state_dict(other.state_dict())


def test_a_torch_only_training_process_imports_neither_dynamo_nor_pandas() -> None:
    """TransUNet builds no torchvision model: its training job must not pay for dynamo
    (~1.3 s per process) or pandas (0.2 s); CPU kernels stay deterministic."""
    code = textwrap.dedent("""
        import sys, tempfile
        import torch
        from iman.data.dataset import CaseArrays
        from iman.train import TrainConfig, Trainer
        g = torch.Generator().manual_seed(0)
        data = CaseArrays([f"C{i}" for i in range(4)], torch.randn(4, 1, 32, 32, generator=g),
                          (torch.rand(4, 1, 32, 32, generator=g) > 0.7).float(), None)
        cfg = TrainConfig(model="transunet", variant="demo", in_channels={"us": 1},
                          img_size=32, max_epochs=2, batch_size=2, seed=0, threads=1)
        with tempfile.TemporaryDirectory() as out:
            summary = Trainer(cfg, data, data, out).fit(progress=False)
        assert summary["epochs"] == 2, summary
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        print(sorted(m for m in ("torch._dynamo", "torch._inductor", "pandas", "torchvision")
                     if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
