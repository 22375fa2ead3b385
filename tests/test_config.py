"""Config at the door: one layering rule, defaults = paper protocol, every problem listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.cli import parse_config

from iman.cli import main
from iman.config import (
    DEMO_CONFIG,
    ConfigError,
    dump_config,
    load_config,
    resolve_config,
    validate_config,
)
from iman.names import METHOD_NAMES

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = validate_config({})


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_leaves(v, key + "."))
        else:
            out[key] = v
    return out


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(ROOT / "config" / name)
    assert cfg["frames"]["T"] in (1, 3, 5, 7, 9)


def test_defaults_are_the_paper_protocol() -> None:
    assert DEFAULTS["train"]["lr"] == 1e-4 and DEFAULTS["train"]["min_lr"] == 5e-5
    assert DEFAULTS["train"]["batch_size"] == 16 and DEFAULTS["iman"]["loops"] == 10
    assert DEFAULTS["frames"] == {"strategy": "middle", "T": 5, "step": 3}
    assert DEFAULTS["data"]["size"] == 320
    assert DEFAULTS["train"]["loop_lr_decay"] == 1.0
    assert DEFAULTS["mmg"]["threshold"] == 0.1  # the authors' binarisation


def test_paper_config_takes_the_schema_default_for_every_key_it_does_not_set(
        capsys: pytest.CaptureFixture[str]) -> None:
    paper = ROOT / "config" / "paper.yaml"
    assert main(["config", "--configfile", str(paper)]) == 0
    printed = _leaves(yaml.safe_load(capsys.readouterr().out))
    named = _leaves(yaml.safe_load(paper.read_text()))
    defaults = _leaves(DEFAULTS)
    unset = [k for k in defaults
             if k not in named and not any(n.startswith(k + ".") for n in named)]
    assert "train.loop_lr_decay" in unset and "train.augment.rotate_deg" in unset
    # a table's seeds (default null: every seed) are recorded as the explicit list
    seeds = [k for k in unset if k.startswith("tables.") and k.endswith(".seeds")]
    assert len(seeds) == 5 and all(printed[k] == printed["seeds"] for k in seeds)
    unset = [k for k in unset if k not in seeds]
    assert {k: printed[k] for k in unset} == {k: defaults[k] for k in unset}
    assert {k: printed[k] for k in named} == named


def test_paper_config_sets_only_what_differs_from_the_schema_defaults() -> None:
    named = _leaves(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    defaults = _leaves(DEFAULTS)
    assert [k for k in named if k in defaults and named[k] == defaults[k]] == []


def test_the_demo_config_is_used_only_when_no_file_is_named(tmp_path: Path) -> None:
    demo = _leaves(resolve_config([DEMO_CONFIG]))
    assert demo["train.loop_lr_decay"] == 0.5 and demo["data.size"] == 64
    mine = tmp_path / "mine.yaml"
    mine.write_text("train: {lr: 0.01}\n")
    cfg = resolve_config([mine])
    assert cfg["train"]["lr"] == 0.01
    assert cfg["train"]["loop_lr_decay"] == 1.0 and cfg["data"]["size"] == 320
    assert cfg["train"]["augment"] == DEFAULTS["train"]["augment"]


def test_later_files_and_overrides_win_key_by_key(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("train: {lr: 0.01, batch_size: 8}\niman: {loops: 3}\n")
    b.write_text("train: {lr: 0.02}\n")
    cfg = resolve_config([a, b], {"iman": {"loops": "4"}})
    assert cfg["train"]["lr"] == 0.02 and cfg["train"]["batch_size"] == 8
    assert cfg["iman"]["loops"] == 4


def test_nested_command_line_values_are_coerced_by_the_schema() -> None:
    # Snakemake parses nested --config values with YAML's BaseLoader: all strings
    overrides = parse_config(['train={"lr": 0.005, "amp": false}', "seeds=[0, 1]",
                              'frames={"T": 3}', 'dataset={"root": null}'])
    assert overrides["train"]["lr"] == "0.005"
    cfg = resolve_config([DEMO_CONFIG], overrides)
    assert cfg["train"]["lr"] == 0.005 and cfg["train"]["amp"] is False
    assert cfg["seeds"] == [0, 1] and cfg["frames"]["T"] == 3
    assert cfg["dataset"]["root"] is None


def test_command_line_values_that_do_not_parse_are_rejected() -> None:
    overrides = parse_config(['train={"lr": "fast"}', "seeds=[0, x]"])
    with pytest.raises(ConfigError) as err:
        resolve_config([DEMO_CONFIG], overrides)
    msg = str(err.value)
    assert "train.lr" in msg and "'fast' is not of type 'number'" in msg
    assert "seeds.1" in msg


def test_iman_config_reports_bad_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", 'iman={"loops": "many"}']) == 2
    assert "iman.loops" in capsys.readouterr().err


def test_a_missing_or_broken_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        resolve_config([tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [lr\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        resolve_config([bad])


def test_wrong_key_and_value_are_all_reported() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"frames": {"T": 4}, "train": {"max_epoch": 3},
                         "mmg": {"us": {"kernel": 75, "filter": "blur"}}})
    msg = str(err.value)
    assert "frames.T" in msg and "[1, 3, 5, 7, 9]" in msg
    assert "max_epoch" in msg and "max_epochs" in msg  # names the allowed keys
    assert "mmg.us.filter" in msg and "gaussian" in msg


def test_unknown_method_names_are_reported_once_with_every_valid_name_and_its_source() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"iman": {"backbone": "resnet9000"},
                         "tables": {"table1": {"methods": ["unet", "vnet"]}}})
    lines = str(err.value).splitlines()
    assert any("'iman.backbone': unknown method 'resnet9000'" in line for line in lines)
    assert any("'tables.table1.methods': unknown method 'vnet'" in line for line in lines)
    valid = [line for line in lines if "valid methods:" in line]
    assert len(valid) == 1  # the list once, not once per unknown name
    assert all(name in valid[0] for name in METHOD_NAMES)
    assert "(in-tree: iman " in valid[0]


def test_sheet_needs_a_root() -> None:
    with pytest.raises(ConfigError, match="dataset.root"):
        validate_config({"dataset": {"source": "sheet"}})


def test_a_method_recipe_overrides_only_that_methods_training() -> None:
    from iman.config import method_train

    cfg = resolve_config([], parse_config(
        ['train={"lr": 0.01, "methods": {"usseg": {"lr": 0.001, "augment": {"rotate_deg": 0}}}}']))
    usseg, unet = method_train(cfg, "usseg"), method_train(cfg, "unet")
    assert usseg["lr"] == 0.001 and usseg["augment"]["rotate_deg"] == 0
    assert usseg["augment"]["crop_scale"] == 0.85  # the rest of augment stays global
    assert unet["lr"] == 0.01 and unet["augment"]["rotate_deg"] == 15
    assert "methods" not in usseg
    with pytest.raises(ConfigError, match="train.methods.*unknown method 'resnet9000'"):
        resolve_config([], {"train": {"methods": {"resnet9000": {"lr": 1}}}})


def test_two_folds_would_leave_nothing_to_train_on() -> None:
    with pytest.raises(ConfigError, match="split.folds.*no training cases"):
        validate_config({"split": {"folds": 2}})
    assert validate_config({"split": {"folds": 3}})["split"]["folds"] == 3


def test_table_seeds_are_all_the_first_n_or_a_list_and_recorded_as_a_list() -> None:
    from iman.experiments import table_seeds

    cfg = resolve_config([], {"seeds": [3, 4, 5], "tables": {"table3": {"seeds": 1},
                                                             "table4": {"seeds": [7]}}})
    assert [cfg["tables"][t]["seeds"] for t in ("table1", "table3", "table4")] == [
        [3, 4, 5], [3], [7]]
    raw = validate_config({"seeds": [0, 1], "tables": {"table2": {"seeds": 1}}})
    assert raw["tables"]["table2"]["seeds"] == 1 and raw["tables"]["table1"]["seeds"] is None
    assert table_seeds(raw, "table2") == [0] and table_seeds(raw, "table1") == [0, 1]
    assert yaml.safe_load(dump_config(cfg))["tables"]["table3"]["seeds"] == [3]


@pytest.mark.parametrize("value, match", [
    (4, "tables.table2.seeds.*4 seeds asked.*lists 3"), (0, "tables.table2.seeds"),
    ([], "tables.table2.seeds"), ([1, 1], "tables.table2.seeds"), ("x", "tables.table2.seeds")])
def test_bad_table_seeds_are_reported_with_their_key(value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_config([], {"seeds": [0, 1, 2], "tables": {"table2": {"seeds": value}}})


def test_the_default_run_trains_stated_verdicts_on_three_seeds() -> None:
    """Tables I, II and V (whose verdicts the docs state) train >= 3 seeds; each Table II
    comparison pairs one experiment per seed (docs/statistics.md)."""
    from iman.experiments import table_comparisons

    cfg = resolve_config([DEMO_CONFIG])
    assert all(len(cfg["tables"][t]["seeds"]) >= 3 for t in ("table1", "table2", "table5"))
    for _, _, row, ref in table_comparisons(cfg, "table2"):
        assert len(row) == len(ref) == 3 and len({r.rsplit("__", 1)[1] for r in row}) == 3


def test_warm_started_loops_take_their_own_epoch_budget() -> None:
    """train.loop_max_epochs / loop_patience reach loops >= 1 only (loop 0, and every node
    when unset, keep max_epochs / patience: the paper trains every loop alike)."""
    from iman.experiments import node_for, table_specs
    from iman.training.node import node_protocol

    cfg = resolve_config([DEMO_CONFIG])
    spec = table_specs(cfg, "table2")[-1][1][0]  # a looped row
    l0, l1 = (node_protocol(cfg, node_for(spec, "us", loop)) for loop in (0, 1))
    assert (l0["max_epochs"], l0["patience"]) == (50, 15)
    assert (l1["max_epochs"], l1["patience"]) == (30, 8)
    paper = resolve_config([ROOT / "config" / "paper.yaml"])
    p1 = node_protocol(paper, node_for(table_specs(paper, "table2")[-1][1][0], "us", 1))
    assert (p1["max_epochs"], p1["patience"]) == (paper["train"]["max_epochs"],
                                                  paper["train"]["patience"])
