"""Kinds of training job, the rehearsal, size checks at parse time and NU-net at 320 px."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import snakemake

from iman.config import ConfigError, resolve_config
from iman.experiments import all_table_nodes, experiment_nodes, table_specs
from iman.models.registry import catalogue, get_entry
from iman.training.kinds import Kind, node_kind, plan_kinds
from iman.training.resources import job_resources

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
SMOKE = ROOT / "config" / "smoke.yaml"
PHANTOM = {"dataset": {"source": "phantom"}, "model": {"pretrained": False}}


@pytest.fixture(scope="module")
def paper() -> dict:
    return resolve_config([PAPER], PHANTOM)


def test_every_node_maps_to_exactly_one_kind(paper: dict) -> None:
    nodes = all_table_nodes(paper)
    plan = plan_kinds(paper["model"], nodes)
    grouped = [n for members in plan.nodes.values() for n in members]
    assert sorted(grouped, key=str) == sorted(nodes, key=str)
    assert len(set(grouped)) == len(grouped)
    for kind, members in plan.nodes.items():
        assert {node_kind(paper["model"], n) for n in members} == {kind}
        assert Kind.from_key(kind.key) == kind


def test_paper_kinds_cover_every_table(paper: dict) -> None:
    kinds = set(plan_kinds(paper["model"], all_table_nodes(paper)).nodes)
    first = {(k.method, k.modality) for k in kinds if k.loop == "first"}
    for method in paper["tables"]["table1"]["methods"]:
        assert {(method, m) for m in get_entry(method).modalities} <= first
    backbone = paper["iman"]["backbone"]
    for bb in (backbone, *paper["tables"]["table5"]["backbones"]):
        for source in ("self", "cross"):
            assert {(bb, m) for m in ("us", "ceus")} <= {
                (k.method, k.modality) for k in kinds if k.margins == source
                and k.loop == "warm"}
    ceus_T = {k.T for k in kinds if k.method == backbone and k.modality == "ceus"}
    assert set(paper["tables"]["table3"]["frames"]) <= ceus_T
    for _, specs in table_specs(paper, "table4"):
        for node in experiment_nodes(specs[0]):
            assert node_kind(paper["model"], node) in kinds


def test_pretrained_start_is_part_of_the_kind() -> None:
    cfg = resolve_config([PAPER], {"dataset": {"source": "phantom"}})
    kinds = plan_kinds(cfg["model"], all_table_nodes(cfg)).nodes
    starts = {k.method: k.pretrained for k in kinds if k.loop == "first"}
    assert starts["transunet"] and starts["unet"] and not starts["nunet"]


def test_nunet_paper_variant_at_320_is_padded_to_its_stride() -> None:
    import torch

    from iman.models import build_model
    from iman.models.nunet import _pad_to

    assert _pad_to(320, 320, 128) == (32, 32, 32, 32)
    model = build_model("nunet", {"us": 1}, 48, "demo").eval()  # L = 5: 48 -> 64
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 48), torch.rand(2, 1, 48, 48)).shape == (2, 1, 48, 48)
    assert get_entry("nunet").size_problem("paper", 320) is None
    resolve_config([PAPER], PHANTOM)  # the paper protocol validates with NU-net at 320


def test_validation_refuses_a_size_the_card_rules_out(monkeypatch: pytest.MonkeyPatch) -> None:
    card = get_entry("fpn")
    monkeypatch.setitem(catalogue().cards, "fpn", replace(card, size_multiple={"demo": 64}))
    with pytest.raises(ConfigError) as err:
        resolve_config([SMOKE])
    text = str(err.value)
    assert "'fpn'" in text and "'demo'" in text and "32" in text and "data.size" in text


def test_validation_refuses_an_unknown_variant() -> None:
    with pytest.raises(ConfigError, match="no variant 'huge'"):
        resolve_config([SMOKE], {"model": {"variants": {"fpn": "huge"}}})


PLANTED = """
import sys
from dataclasses import replace
from iman.models.registry import catalogue
from iman.cli import main

def build(in_channels, img_size, **kwargs):
    if img_size == 32:
        raise ValueError("planted: this method refuses 32 px")
    raise AssertionError("not reached")

sys.modules["planted"] = sys.modules[__name__]
cards = catalogue().cards
cards["fpn"] = replace(cards["fpn"], build="planted:build")
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_planted_failure_fails_the_rehearsal_naming_kind_and_job(tmp_path: Path) -> None:
    script = tmp_path / "planted.py"
    script.write_text(textwrap.dedent(PLANTED))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}"}
    only = ["unet.demo/us/-/none/first", "fpn.demo/us/-/none/first", "fpn.demo/ceus/T3/self"]
    proc = subprocess.run(
        [sys.executable, str(script), "rehearse", "--configfile", str(SMOKE), "--threads", "1",
         "--steps", "1", "--only", *only, "--directory", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "fpn.demo/us/-/none/first/random" in proc.stderr
    assert "fpn.demo/ceus/T3/self/warm/random" in proc.stderr
    assert "planted: this method refuses 32 px" in proc.stderr
    assert "stands for job fpn.demo" in proc.stderr
    df = pd.read_csv(tmp_path / "results" / "rehearsal" / "resources.csv")
    ok = df[df["status"] == "ok"]
    assert list(ok["kind"]) == ["unet.demo/us/-/none/first/random"]
    assert (ok["s_per_step"] > 0).all() and (ok["rss_peak_mb"] > 0).all()
    assert (ok["params"] > 0).all() and (ok["data"] == "phantom").all()
    assert set(df.loc[df["status"] != "ok", "method"]) == {"fpn"}


def _row(**over: object) -> dict:
    row = {"kind": "unet.demo/us/-/none/first/random", "status": "ok", "batch_size": 2,
           "configured_batch_size": 4, "rss_model_mb": 1000.0, "rss_peak_mb": 1500.0,
           "s_per_step": 2.0, "s_val_batch": 1.0, "s_per_eval_case": 0.5,
           "s_margins_per_case": float("nan"), "steps_per_epoch": 10, "val_batches": 2,
           "eval_cases": 20, "max_epochs": 100, "cuda_max_reserved_mb": float("nan"),
           "device": "cpu"}
    return {**row, **over}


def test_job_resources_scale_the_rehearsal_to_the_job_with_headroom() -> None:
    from iman.training.resources import FALLBACK, HEADROOM, STARTUP_S, job_resources, job_seconds

    # batch 2 -> 4: steps and validation twice as long; growth of memory doubled
    assert job_seconds(_row(), 100) == pytest.approx(100 * (10 * 4 + 2 * 2) + 20 * 0.5)
    res = job_resources(_row(), batch_size=4, max_epochs=100)
    assert res.mem_mb >= 2000 * HEADROOM["mem"] and res.mem_mb < 2000 * HEADROOM["mem"] + 100
    minutes = (4410 + STARTUP_S) * HEADROOM["runtime"] / 60
    assert minutes <= res.runtime < minutes + 5 and res.gpu_mem_mb == 0
    assert job_resources(_row(), 4, 100, attempt=2).mem_mb > res.mem_mb
    gpu = job_resources(_row(cuda_max_reserved_mb=10000.0), 4, 100)
    assert gpu.gpu_mem_mb >= 20000 * HEADROOM["gpu_mem"]
    assert job_resources(None, 4, 100) == FALLBACK


def test_estimate_from_a_rehearsal_names_what_it_cannot_estimate() -> None:
    from iman.reporting.cost import estimate_from_rehearsal, estimate_headline

    cfg = resolve_config([SMOKE])
    nodes = all_table_nodes(cfg)
    table = estimate_from_rehearsal(pd.DataFrame([_row()]), cfg["model"], nodes)
    assert table["planned_jobs"].sum() == len(nodes)
    measured = table.set_index("kind").loc["unet.demo/us/-/none/first/random"]
    assert measured["hours"] == pytest.approx(measured["planned_jobs"] * 4410 / 3600)
    line = estimate_headline(table, "max_epochs", "kind")
    assert "cannot estimate" in line and f"of {len(nodes)} training jobs" in line
    nothing = estimate_from_rehearsal(pd.DataFrame([_row(kind="x/y")]), cfg["model"], nodes)
    line = estimate_headline(nothing, 100, "kind")
    assert line.startswith("cannot estimate") and "0.0 device hours" not in line


SMALL = ['tables={"table1": {"methods": ["unet", "fpn"]}, "table2": {"control": false, '
         '"oracle": false, "mismatched": false}, "table3": {"frames": [3]}, '
         '"table4": {"kernels": [50], "filters": ["none"]}, "table5": {"backbones": []}}']


@pytest.mark.dag
def test_rehearse_target_measures_every_kind_and_sizes_the_train_jobs(tmp_path: Path) -> None:
    snakemake(tmp_path, "rehearse", "--config", *SMALL)
    df = pd.read_csv(tmp_path / "results" / "rehearsal" / "resources.csv")
    cfg = resolve_config([SMOKE], {"tables": {
        "table1": {"methods": ["unet", "fpn"]}, "table2": {"control": False, "oracle": False,
                                                           "mismatched": False},
        "table3": {"frames": [3]}, "table4": {"kernels": [50], "filters": ["none"]},
        "table5": {"backbones": []}}})
    kinds = {k.key for k in plan_kinds(cfg["model"], all_table_nodes(cfg)).nodes}
    assert set(df["kind"]) == kinds and (df["status"] == "ok").all()
    assert (df["s_per_step"] > 0).all() and (df["rss_peak_mb"] > 0).all()
    assert df["planned_jobs"].sum() == len(all_table_nodes(cfg))
    assert "Rehearsal of" in (tmp_path / "results" / "rehearsal" / "summary.txt").read_text()
    dry = snakemake(tmp_path, "-n", "--workflow-profile", str(ROOT / "profiles" / "slurm"),
                    "tables", "--config", *SMALL)
    out = dry.stdout + dry.stderr
    train = [block for block in out.split("rule ")[1:] if block.startswith("train:")]
    asked = [(int(re.search(r"mem_mb=(\d+)", b)[1]), int(re.search(r"runtime=(\d+)", b)[1]))
             for b in train]
    assert len(asked) == len(all_table_nodes(cfg)), out[-3000:]
    expected = {(r.mem_mb, r.runtime) for r in (
        job_resources(row, 4, 2) for row in df.to_dict("records"))}
    assert set(asked) <= expected and (4000, 60) not in asked


def test_card_size_multiple_is_checked_and_read_per_variant() -> None:
    from iman.models.registry import _card_problems

    card = get_entry("fpn")
    assert any("size_multiple" in p for p in _card_problems(replace(card, size_multiple=0),
                                                            "fpn"))
    assert card.size_problem("paper", 320) is None and card.size_problem("demo", 48) is None
    assert "divisible by 32" in card.size_problem("paper", 48)


def test_a_kind_without_a_measurement_keeps_the_former_defaults() -> None:
    from iman.training.resources import CLUSTER_FALLBACK, FALLBACK, job_resources

    # no rehearsal row: locally the rule's 4000 MB / 60 min, on a cluster what the SLURM
    # profile asked before the rehearsal (32000 MB / 720 min), whatever the attempt
    assert job_resources(None, 16, 300) == FALLBACK
    assert job_resources(None, 16, 300, attempt=2, cluster=True) == CLUSTER_FALLBACK
    assert (CLUSTER_FALLBACK.mem_mb, CLUSTER_FALLBACK.runtime) == (32000, 720)
    assert (FALLBACK.mem_mb, FALLBACK.runtime) == (4000, 60)
