"""Training settings have one source (issue 28 §2): the TrainConfig fields, the schema's
``train.*`` keys and the node protocol agree, protocols did not change, losses are a registry."""

from __future__ import annotations

import json
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from iman.config import SCHEMA_PATH, ConfigError, resolve_config, validate_config
from iman.data.dataset import Augment
from iman.experiments import Node
from iman.training import settings
from iman.training.losses import SegLoss, build_loss
from iman.training.node import node_protocol, train_config
from iman.training.settings import (
    ADDED,
    LOSSES,
    NOT_SETTINGS,
    TrainConfig,
    protocol_fields,
    train_keys,
)

ROOT = Path(__file__).resolve().parents[1]
BEFORE = Path(__file__).parent / "data" / "node_protocols_before_issue28.json"
TRAIN_SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["train"]["properties"]
RECIPE_SCHEMA = TRAIN_SCHEMA["methods"]["additionalProperties"]["properties"]
NOT_IN_RECIPES = {"methods", "amp"}  # recipes do not nest; amp is a device setting
DEMO = resolve_config([ROOT / "config" / "config.yaml"])
NODE = Node("unet.demo__gate__-__none__-__-__seed0", "us", 1)


def _schema_keys() -> set[str]:
    return set(TRAIN_SCHEMA) - set(NOT_SETTINGS)


def test_every_schema_train_key_is_a_train_field_and_every_train_field_a_schema_key() -> None:
    assert set(NOT_SETTINGS) <= set(TRAIN_SCHEMA)
    assert set(train_keys()) == _schema_keys()
    assert set(RECIPE_SCHEMA) == set(TRAIN_SCHEMA) - NOT_IN_RECIPES


def test_train_field_defaults_are_the_schema_defaults() -> None:
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in train_keys()}
    augment = {k: v["default"] for k, v in TRAIN_SCHEMA["augment"]["properties"].items()}
    assert augment == vars(Augment())  # TrainConfig's augment {} = Augment()'s defaults
    assert {k: defaults[k] for k in defaults if k != "augment"} == {
        k: TRAIN_SCHEMA[k]["default"] for k in defaults if k != "augment"}


def test_the_protocol_records_every_schema_train_key_and_only_settings() -> None:
    recorded = set(node_protocol(DEMO, NODE))
    assert recorded == {f.name for f in protocol_fields() if not f.metadata["added"]}
    assert _schema_keys() - {f.name for f in protocol_fields() if f.metadata["added"]} \
        <= recorded
    derived = {f.name for f in protocol_fields() if f.metadata["source"] == "node"}
    assert recorded - derived <= _schema_keys()
    cfg = resolve_config([ROOT / "config" / "config.yaml"], {"train": {"loss": "dice"}})
    assert node_protocol(cfg, NODE) == node_protocol(DEMO, NODE)  # a default added key: unrecorded


def _half_dice(cfg: TrainConfig) -> Any:
    """A second loss for the registry test: half the default loss."""
    seg = SegLoss(cfg.bce_weight)
    return lambda logits, target: 0.5 * seg(logits, target)


def test_a_new_training_key_is_one_field(monkeypatch: pytest.MonkeyPatch) -> None:
    extended = make_dataclass("TrainConfig", [("label_smoothing", float,
                                                field(default=0.0, metadata=ADDED))],
                              bases=(TrainConfig,))
    monkeypatch.setattr(settings, "TrainConfig", extended)
    cfg = {**DEMO, "train": {**DEMO["train"], "label_smoothing": 0.1}}
    assert node_protocol(cfg, NODE)["label_smoothing"] == 0.1
    cfg["train"]["label_smoothing"] = 0.0
    assert "label_smoothing" not in node_protocol(cfg, NODE)  # existing nodes keep their params


@pytest.mark.parametrize("name", ["config", "smoke", "paper"])
def test_node_protocols_are_those_recorded_before_issue_28(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The expected values were written by main's node_protocol (before this refactor),
    compared by repr: what Snakemake records as the train rule's params, key order included.
    The demo has since given its warm-started loops their own epoch budget (issue 25,
    ``train.loop_max_epochs`` / ``loop_patience``): without it its protocols are the recorded
    ones, and with it exactly ``max_epochs`` and ``patience`` of loops ≥ 1 differ."""
    (tmp_path / "resnet50-19c8e357.pth").write_text("not a real weight file\n")
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("IMAN_WEIGHTS_CATALOG", raising=False)
    cfg = resolve_config([ROOT / "config" / f"{name}.yaml"])
    plain = resolve_config([ROOT / "config" / f"{name}.yaml"],
                           {"train": {"loop_max_epochs": None, "loop_patience": None}})
    for row in json.loads(BEFORE.read_text())[name]:
        node = Node(row["run"], row["modality"], row["loop"])
        assert repr(node_protocol(plain, node)) == row["protocol"], node
        now = node_protocol(cfg, node)
        changed = {k for k, v in now.items() if v != node_protocol(plain, node)[k]}
        budget = cfg["train"]["loop_max_epochs"] or cfg["train"]["loop_patience"]
        assert changed <= ({"max_epochs", "patience"} if node.loop and budget else set()), (
            node, changed)


def test_an_unknown_loss_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"train.loss.*'focal'.*known losses: \['dice'"):
        validate_config({"train": {"loss": "focal"}})
    with pytest.raises(ConfigError, match=r"train.methods.unet.loss.*'focall'"):
        validate_config({"train": {"methods": {"unet": {"loss": "focall"}}}})


def test_the_default_loss_gives_the_values_of_before() -> None:
    """Values of main's SegLoss (before the registry) on this fixed tensor."""
    g = torch.Generator().manual_seed(28)
    logits = torch.randn(3, 1, 8, 8, generator=g) * 3
    target = (torch.rand(3, 1, 8, 8, generator=g) > 0.6).float()
    for bce_weight, before in ((0.0, 0.5575578212738037), (0.5, 1.1899948120117188)):
        cfg = TrainConfig("unet", "demo", {"us": 1}, 32, bce_weight=bce_weight)
        assert float(build_loss(cfg)(logits, target)) == pytest.approx(before, rel=1e-6)


def test_a_new_loss_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES, "half_dice", f"{__name__}:_half_dice")
    cfg = resolve_config([ROOT / "config" / "smoke.yaml"], {"train": {"loss": "half_dice"}})
    protocol = node_protocol(cfg, NODE)
    assert protocol["loss"] == "half_dice"  # set: recorded, so the node retrains
    loss = build_loss(train_config(protocol, NODE))
    logits, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert float(loss(logits, target)) == pytest.approx(0.5 * float(SegLoss()(logits, target)))
