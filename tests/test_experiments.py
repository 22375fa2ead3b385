"""Experiment names round-trip; table rows share training nodes; margins route correctly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iman.config import validate_config
from iman.experiments import (
    Node,
    Spec,
    experiment_name,
    experiment_nodes,
    margin_source,
    node_for,
    parent_node,
    parse_name,
    table_specs,
)

CFG = validate_config({"model": {"variants": {"default": "demo"}}, "iman": {"loops": 3}})


def test_name_round_trip_for_every_table_spec() -> None:
    for table in ("table1", "table2", "table3", "table4", "table5"):
        for _, specs in table_specs(CFG, table):
            for spec in specs:
                assert parse_name(experiment_name(spec)) == spec


def test_name_is_readable_and_deterministic() -> None:
    spec = Spec("unet", "demo", routing="cross", mmg_us=(75, "gaussian"),
                mmg_ceus=(100, "mean"), loops=2)
    assert experiment_name(spec) == (
        "unet.demo__gate__T5s3mid__cross__us75gaussian__ceus100mean__L2__seed0")


def test_bad_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="not an experiment"):
        parse_name("unet")
    with pytest.raises(ValueError, match="bad MMG field"):
        parse_name("unet.demo__gate__-__self__us75blur__-__L1__seed0")


def test_loop0_is_the_shared_baseline() -> None:
    base = Spec("unet", "demo")
    iman = replace(base, routing="cross", mmg_us=(75, "gaussian"), mmg_ceus=(100, "mean"),
                   loops=2)
    t3 = replace(base, T=7)
    assert node_for(iman, "us", 0) == node_for(base, "us", 0) == node_for(t3, "us", 0)
    assert node_for(iman, "ceus", 0) == node_for(base, "ceus", 0)
    assert node_for(t3, "ceus", 0) != node_for(base, "ceus", 0)  # T changes the CEUS input


def test_mmg_row_is_loop1_of_itp_and_of_table4() -> None:
    mmg = Spec("unet", "demo", routing="self", mmg_us=(75, "gaussian"),
               mmg_ceus=(100, "mean"), loops=1)
    itp = replace(mmg, loops=3)
    t4 = replace(mmg, mmg_ceus=(50, "none"))
    assert node_for(mmg, "us", 1) == node_for(itp, "us", 1) == node_for(t4, "us", 1)
    assert node_for(mmg, "ceus", 1) != node_for(t4, "ceus", 1)


def test_routing_and_warm_start() -> None:
    iman = Spec("unet", "demo", routing="cross", mmg_us=(75, "gaussian"),
                mmg_ceus=(100, "mean"), loops=2)
    us2 = node_for(iman, "us", 2)
    source = margin_source(us2)
    assert source is not None and source.kind == "pred"
    assert source.node == node_for(iman, "ceus", 1) and source.setting == (75, "gaussian")
    assert parent_node(us2) == node_for(iman, "us", 1)
    selfish = replace(iman, routing="self")
    source = margin_source(node_for(selfish, "ceus", 1))
    assert source is not None and source.modality == "ceus"
    assert source.node == node_for(selfish, "ceus", 0) and source.setting == (100, "mean")


def test_experiment_nodes_choose_among_loops_1_to_L() -> None:
    iman = Spec("unet", "demo", routing="cross", mmg_us=(75, "gaussian"),
                mmg_ceus=(100, "mean"), loops=2)
    nodes = experiment_nodes(iman)
    assert [(n.modality, n.loop) for n in nodes] == [("us", 1), ("us", 2), ("ceus", 1),
                                                      ("ceus", 2)]
    assert all(isinstance(n, Node) for n in nodes)


def test_tables_share_training_nodes() -> None:
    nodes: dict[Node, int] = {}
    for table in ("table1", "table2", "table3", "table4", "table5"):
        for _, specs in table_specs(CFG, table):
            for spec in specs:
                for node in experiment_nodes(spec):
                    nodes[node] = nodes.get(node, 0) + 1
    baseline_us = node_for(Spec("transunet", "demo"), "us", 0)
    assert nodes[baseline_us] >= 4  # Tables I, II, III (US side), IV all report it


def test_table4_kernel125_is_ceus_only() -> None:
    rows = table_specs(CFG, "table4")
    k125 = [specs[0] for labels, specs in rows if labels["kernel"] == 125]
    assert k125 and all(s.mmg_us is None and s.mmg_ceus is not None for s in k125)
    assert {n.modality for s in k125 for n in experiment_nodes(s)} == {"ceus"}


def test_seeds_give_one_spec_each() -> None:
    cfg = validate_config({"seeds": [0, 1, 2]})
    _labels, specs = table_specs(cfg, "table1")[0]
    assert [s.seed for s in specs] == [0, 1, 2]


def test_control_row_continues_the_baseline_without_margins() -> None:
    rows = table_specs(CFG, "table2")
    labels = [(r["mmg"], r["itp"], r["modal_fusion"]) for r, _ in rows]
    assert labels == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)]
    control, itp = rows[1][1][0], rows[3][1][0]
    base = rows[0][1][0]
    # the same loops (epochs, warm starts, LR restarts) as MMG+ITP, chosen among the same loops
    assert control.loops == itp.loops == 3
    assert [n.loop for n in experiment_nodes(control)] == [n.loop for n in experiment_nodes(itp)]
    for m in ("us", "ceus"):
        loop2 = node_for(control, m, 2)
        assert margin_source(loop2) is None  # no margins anywhere in the control
        assert parent_node(loop2) == node_for(control, m, 1)
        assert parent_node(node_for(control, m, 1)) == node_for(base, m, 0)  # the baseline
        assert loop2.run == node_for(base, m, 0).run  # the baseline run, continued
    off = validate_config({**CFG, "tables": {"table2": {"control": False}}})
    assert len(table_specs(off, "table2")) == 4
    assert len(table_specs(CFG, "table5")) == 4 * 5  # table5.control is off by default
    on = validate_config({**CFG, "tables": {"table5": {"control": True}}})
    assert len(table_specs(on, "table5")) == 5 * 5


def test_table_comparisons_name_each_row_and_its_reference() -> None:
    from iman.experiments import table_comparisons

    t1 = table_comparisons(CFG, "table1")
    assert len(t1) == len(CFG["tables"]["table1"]["methods"])
    assert {ref for _, ref, _, _ in t1} == {"method=iman"}
    t2 = {(row, ref) for row, ref, _, _ in table_comparisons(CFG, "table2")}
    base = "mmg=0 itp=0 modal_fusion=0"
    assert ("mmg=1 itp=1 modal_fusion=0", "mmg=0 itp=1 modal_fusion=0") in t2  # vs control
    assert ("mmg=1 itp=1 modal_fusion=1", "mmg=1 itp=1 modal_fusion=0") in t2  # IMAN vs ITP
    assert sum(ref == base for _, ref in t2) == 4  # every other row vs the baseline
    t3 = table_comparisons(CFG, "table3")
    assert {ref for _, ref, _, _ in t3} == {"frames=1"} and len(t3) == 4
    t5 = table_comparisons(CFG, "table5")
    backbones = CFG["tables"]["table5"]["backbones"]
    assert len(t5) == 3 * len(backbones)  # per backbone: 3 rows vs its own baseline
    assert all(row.split()[0] == ref.split()[0] for row, ref, _, _ in t5)
    seeds = validate_config({**CFG, "seeds": [0, 1]})
    assert all(len(a) == len(b) == 2 for *_, a, b in table_comparisons(seeds, "table4"))


def test_folds_are_an_axis_of_every_row_and_part_of_the_node_name() -> None:
    from iman.experiments import runs_of

    cfg = validate_config({**CFG, "seeds": [0, 1], "split": {"folds": 3}})
    assert runs_of(cfg) == [(s, f) for s in (0, 1) for f in (0, 1, 2)]
    for table in ("table1", "table2", "table3", "table4", "table5"):
        for _, specs in table_specs(cfg, table):
            assert sorted((s.seed, s.fold) for s in specs) == runs_of(cfg)
            for spec in specs:
                assert parse_name(experiment_name(spec)) == spec
                assert experiment_name(spec).endswith(f"seed{spec.seed}fold{spec.fold}")
    # within a fold, Table II's baseline node is Table IV's; across folds it is not
    t2 = {(s.seed, s.fold): s for s in table_specs(cfg, "table2")[0][1]}
    t4 = {(s.seed, s.fold): s for s in table_specs(cfg, "table4")[0][1]}
    assert node_for(t2[(1, 2)], "us", 0) == node_for(t4[(1, 2)], "us", 0)
    a, b = (node_for(s, "us", 0) for s in (t2[(0, 0)], t2[(0, 1)]))
    assert a != b and a.run.endswith("fold0") and b.run.endswith("fold1")
    holdout = validate_config(CFG)
    assert runs_of(holdout) == [(0, None)]
    assert experiment_name(table_specs(holdout, "table1")[0][1][0]).endswith("__seed0")


def test_each_table_trains_its_own_seeds_and_shares_the_first_seed_nodes() -> None:
    """tables.<t>.seeds: Table III on the first seed, Table II on all three; the baseline
    node of seed 0 is the same node in both (trained once)."""
    from iman.experiments import all_table_nodes, runs_of

    cfg = validate_config({**CFG, "seeds": [0, 1, 2], "tables": {"table3": {"seeds": 1},
                                                                 "table4": {"seeds": [2]}}})
    assert runs_of(cfg, "table3") == [(0, None)] and runs_of(cfg, "table4") == [(2, None)]
    assert all(len(specs) == 3 for _, specs in table_specs(cfg, "table2"))
    assert all([s.seed for s in specs] == [0] for _, specs in table_specs(cfg, "table3"))
    t3 = {node_for(s, "us", 0) for _, specs in table_specs(cfg, "table3") for s in specs}
    t2 = {node_for(s, "us", 0) for s in table_specs(cfg, "table2")[0][1]}
    assert t3 < t2
    seeds = {parse_name(n.run).seed for n in all_table_nodes(cfg)}
    assert seeds == {0, 1, 2}
