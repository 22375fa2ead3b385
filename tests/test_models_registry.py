"""Shared tests over every method (in-tree and installed plug-ins): demo variant, 64 px
forward/backward contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_tester import check_forward_backward

from iman.models import (
    UnknownModelError,
    all_entries,
    build_model,
    get_entry,
    source_of,
)
from iman.names import METHOD_NAMES

ENTRIES = all_entries()
NAMES = [e.name for e in ENTRIES]  # in-tree and installed plug-ins
MODELS_DIR = Path(__file__).resolve().parents[1] / "src" / "iman" / "models"
NOT_METHODS = {"__init__", "registry", "cards", "blocks", "injection"}

EXPECTED_METHODS = {
    "unet", "fpn", "unetpp", "deeplabv3",  # smp frameworks
    "transunet", "swinunet",  # transformer frameworks
    "aaunet", "nunet",  # ultrasound methods
    "usseg", "ggnet", "dcnet",  # seed-paper methods
    "dpran", "ceusegnet",  # CEUS methods
}  # fmt: skip


def test_registry_has_every_method() -> None:
    # exactly the compared methods come from iman itself: a lost or an unlisted entry point
    # both fail here; every one of them runs through the shared contract below
    in_tree = [n for n in NAMES if source_of(n).in_tree]
    assert set(in_tree) == EXPECTED_METHODS and tuple(in_tree) == METHOD_NAMES
    # each model module is some card's constructor, and each card's constructor is one
    modules = {p.stem for p in MODELS_DIR.glob("*.py")} - NOT_METHODS
    built = {get_entry(n).build.partition(":")[0] for n in in_tree}
    assert built == {f"iman.models.{m}" for m in modules}
    for entry in ENTRIES:
        assert {"paper", "demo"} <= set(entry.variants), entry.name
        assert entry.modalities and set(entry.modalities) <= {"us", "ceus"}, entry.name


def test_unknown_name_lists_valid_ones_and_their_packages() -> None:
    with pytest.raises(UnknownModelError, match=r"valid methods: unet, .*\(in-tree: iman "):
        get_entry("unet3000")
    with pytest.raises(UnknownModelError, match="variants: .*paper"):
        build_model("unet", {"us": 1}, 64, variant="huge")


@pytest.mark.parametrize("name", NAMES)
def test_demo_forward_backward_and_margin_contract(name: str) -> None:
    """The shared contract check (tests/model_tester.py) for every registered method."""
    check_forward_backward(name)


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
