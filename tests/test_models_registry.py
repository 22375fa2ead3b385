"""Shared tests over every registered model: demo variant, 64 px forward/backward contract."""

from __future__ import annotations

import pytest
import torch

from iman.models import (
    MODEL_MODULES,
    REGISTRY,
    UnknownModelError,
    all_entries,
    build_model,
    get_entry,
)

ENTRIES = all_entries()
NAMES = [e.name for e in ENTRIES]

EXPECTED_METHODS = {
    "unet", "fpn", "unetpp", "deeplabv3",  # smp frameworks
    "transunet", "swinunet",  # transformer frameworks
    "aaunet", "nunet",  # ultrasound methods
    "usseg", "ggnet", "dcnet",  # seed-paper methods
    "dpran", "ceusegnet",  # CEUS methods
}  # fmt: skip


def test_registry_has_every_method() -> None:
    # exactly the compared methods: a lost or an unlisted registration both fail here
    assert set(REGISTRY) == EXPECTED_METHODS
    # every one of them runs through the parametrized forward/backward contract below
    assert sorted(NAMES) == sorted(EXPECTED_METHODS)
    assert {e.build.__module__.rsplit(".", 1)[-1] for e in ENTRIES} == set(MODEL_MODULES)
    for entry in ENTRIES:
        assert {"paper", "demo"} <= set(entry.variants), entry.name
        assert entry.modalities and set(entry.modalities) <= {"us", "ceus"}, entry.name


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(UnknownModelError, match="registered models: .*unet"):
        get_entry("unet3000")
    with pytest.raises(UnknownModelError, match="variants: .*paper"):
        build_model("unet", {"us": 1}, 64, variant="huge")


def _inputs(name: str, modality: str) -> dict[str, int]:
    entry = get_entry(name)
    return {m: (1 if m == "us" else 3) for m in entry.consumed(modality)}


@pytest.mark.parametrize("name", NAMES)
def test_demo_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    entry = get_entry(name)
    modality = entry.modalities[-1]
    in_ch = _inputs(name, modality)
    injection = "gate_skips" if entry.gates_skips else "input_channel"
    model = build_model(name, in_ch, 64, "demo", injection)
    x = torch.randn(2, sum(in_ch.values()), 64, 64)
    margin = torch.rand(2, 1, 64, 64)
    model.train()
    out = model(x, margin)
    logits = out["logits"] if isinstance(out, dict) else out
    assert logits.shape == (2, 1, 64, 64)
    target = (torch.rand(2, 1, 64, 64) > 0.5).float()
    if hasattr(model, "loss"):
        from iman.losses import SegLoss

        loss = model.loss(out, target, SegLoss())
    else:
        loss = logits.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        plain = model(x, None)
        gated = model(x, margin)  # the margin is accepted in inference too
    for y in (plain, gated):
        assert isinstance(y, torch.Tensor) and y.shape == (2, 1, 64, 64)
        assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", [e.name for e in ENTRIES if e.gates_skips])
def test_margin_gating_changes_output(name: str) -> None:
    torch.manual_seed(0)
    in_ch = _inputs(name, get_entry(name).modalities[-1])
    model = build_model(name, in_ch, 64, "demo").eval()
    x = torch.randn(1, sum(in_ch.values()), 64, 64)
    with torch.no_grad():
        ones = model(x, torch.ones(1, 1, 64, 64))
        none = model(x, None)
        half = model(x, torch.full((1, 1, 64, 64), 0.25))
    assert torch.allclose(ones, none, atol=1e-5), "all-ones margin must equal no margin"
    assert not torch.allclose(half, none, atol=1e-4), "gating must change the output"


def test_input_channel_injection_adds_a_channel() -> None:
    model = build_model("unet", {"us": 1}, 64, "demo", "input_channel").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        a = model(x, None)
        b = model(x, torch.zeros(1, 1, 64, 64))
    assert a.shape == (1, 1, 64, 64) and not torch.allclose(a, b)


@pytest.mark.parametrize("name", ["unet", "fpn", "unetpp", "deeplabv3"])
def test_smp_paper_parameter_counts(name: str) -> None:
    from iman.models import count_parameters

    entry = get_entry(name)
    model = build_model(name, entry.paper_input["in_channels"], 64, "paper")
    assert count_parameters(model) / 1e6 == pytest.approx(entry.paper_params_m, rel=0.01)
