"""Config validation at the door: defaults, every problem listed, allowed values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from iman.config import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(ROOT / "config" / name)
    assert cfg["frames"]["T"] in (1, 3, 5, 7, 9)


def test_defaults_are_the_paper_protocol() -> None:
    cfg = validate_config({})
    assert cfg["train"]["lr"] == 1e-4 and cfg["train"]["min_lr"] == 5e-5
    assert cfg["train"]["batch_size"] == 16 and cfg["iman"]["loops"] == 10
    assert cfg["frames"] == {"strategy": "middle", "T": 5, "step": 3}


def test_wrong_key_and_value_are_all_reported() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"frames": {"T": 4}, "train": {"max_epoch": 3},
                         "mmg": {"us": {"kernel": 75, "filter": "blur"}}})
    msg = str(err.value)
    assert "frames.T" in msg and "[1, 3, 5, 7, 9]" in msg
    assert "max_epoch" in msg and "max_epochs" in msg  # names the allowed keys
    assert "mmg.us.filter" in msg and "gaussian" in msg


def test_unknown_model_names_are_reported() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'.*registered"):
        validate_config({"iman": {"backbone": "resnet9000"}})


def test_sheet_needs_a_root() -> None:
    with pytest.raises(ConfigError, match="dataset.root"):
        validate_config({"dataset": {"source": "sheet"}})
