"""The one forward/backward check of the model contract (``iman.models.registry``).

Every registered method runs through :func:`check_forward_backward` (parametrized over the
registry in ``tests/test_models_registry.py``); the family test files only add what is
specific to a method (sizes, losses, loaders, published parameter counts).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iman.models import build_model, get_entry
from iman.training.losses import SegLoss

__all__ = ["check_forward_backward", "demo_channels"]


def demo_channels(name: str, modality: str, frames: int = 3) -> dict[str, int]:
    """Channels per consumed modality: 1 for US, ``frames`` stacked frames for CEUS."""
    return {m: 1 if m == "us" else frames for m in get_entry(name).consumed(modality)}


def _band(batch: int, size: int) -> Tensor:
    """A margin that is 1 in a central square and 0.2 around it (a real gating signal)."""
    margin = torch.full((batch, 1, size, size), 0.2)
    margin[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    return margin


def _target(batch: int, size: int) -> Tensor:
    """Discs of different centres (a lesion per sample)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    discs = [((yy - size // 2 - 3 * i) ** 2 + (xx - size // 2) ** 2 < (size // 5) ** 2)
             for i in range(batch)]
    return torch.stack(discs).float()[:, None]


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The generator's trainable parameters (an adversary is trained by its own loss)."""
    return {n: p for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith("adversary.")}


def check_forward_backward(name: str, modality: str | None = None, size: int = 64,
                           batch: int = 2) -> None:
    """The demo variant of ``name`` meets the model contract at ``size`` px.

    Training mode, without and with a margin: logits ``(B, 1, H, W)`` (a dict with
    ``"logits"`` is allowed), the method's own loss (``model.loss``, else the trainer's
    segmentation loss) is a finite scalar, every trainable generator parameter gets a finite
    gradient, the gradient reaches the input, and an adversary gets none from the generator
    loss. Eval mode: a float32 tensor of that shape for ``None``, all-ones and a band margin;
    a skip-gating model treats all ones as no margin and changes its output under the band,
    an ``input_channel`` model (no skip gates) reads the band as its extra channel.
    """
    entry = get_entry(name)
    modality = modality or entry.modalities[-1]
    channels = demo_channels(name, modality)
    injection = "gate_skips" if entry.gates_skips else "input_channel"
    torch.manual_seed(0)
    model = build_model(name, channels, size, "demo", injection)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, sum(channels.values()), size, size, generator=gen)
    target, band = _target(batch, size), _band(batch, size)
    seg_loss = SegLoss()

    model.train()
    for margin in (None, band):
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        out = model(inp, margin)
        logits = out["logits"] if isinstance(out, dict) else out
        assert isinstance(logits, Tensor) and logits.shape == (batch, 1, size, size), name
        loss = model.loss(out, target, seg_loss) if hasattr(model, "loss") \
            else seg_loss(logits, target)
        assert loss.ndim == 0 and torch.isfinite(loss), (name, float(loss))
        loss.backward()
        params = _trainable(model)
        no_grad = [n for n, p in params.items() if p.grad is None]
        assert not no_grad, f"{name} (margin {margin is not None}): no gradient for {no_grad}"
        bad = [n for n, p in params.items() if not torch.isfinite(p.grad).all()]
        assert not bad, f"{name}: non-finite gradient in {bad}"
        assert inp.grad is not None and inp.grad.abs().sum() > 0, "no gradient at the input"
        adversary = getattr(model, "adversary", None)
        if adversary is not None:  # the generator loss builds no graph into the adversary
            assert all(p.grad is None for p in adversary.parameters()), name

    model.eval()
    with torch.no_grad():
        plain = model(x, None)
        ones = model(x, torch.ones(batch, 1, size, size))
        gated = model(x, band)
    for y in (plain, ones, gated):
        assert isinstance(y, Tensor) and y.shape == (batch, 1, size, size), name
        assert y.dtype == torch.float32 and torch.isfinite(y).all(), name
    assert torch.allclose(plain, ones, atol=1e-5), f"{name}: all-ones margin != no margin"
    assert not torch.allclose(plain, gated, atol=1e-4), f"{name}: the margin changes nothing"
