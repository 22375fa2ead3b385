"""The rule-facing functions of each stage on tiny files: each rule's function writes exactly
the files it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from iman.evaluation.evaluate import summarize
from iman.experiments import Spec, experiment_name, experiment_nodes
from iman.names import node_key
from iman.paths import NodeFiles, Paths, parse_node
from iman.reporting.cost import cost_table

# a self-routed experiment with two selectable loops per branch, fold 2 of seed 1
SPEC = Spec("unet", "demo", routing="self", mmg_us=(50, "mean"), mmg_ceus=(50, "mean"),
            loops=2, seed=1, fold=2)


def _metrics(path: Path, val: float, test: float) -> None:
    rows = [{"case_id": f"0{i}", "split": "val", "std_dsc": val, "std_hd_mm": 1.0}
            for i in range(2)]
    rows += [{"case_id": f"1{i}", "split": "test", "std_dsc": test, "std_hd_mm": 2.0}
             for i in range(3)]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_summarize_writes_each_output_once_to_the_given_paths(tmp_path: Path) -> None:
    files: dict[str, str | Path] = {}
    for node in experiment_nodes(SPEC):
        base = tmp_path / f"{node.modality}{node.loop}"
        _metrics(base.with_suffix(".csv"), val=0.5 + 0.1 * node.loop, test=0.3 * node.loop)
        base.with_suffix(".json").write_text(json.dumps({"node": node.loop}))
        files[node_key(node, "metrics")] = base.with_suffix(".csv")
        files[node_key(node, "provenance")] = base.with_suffix(".json")
    before = set(tmp_path.iterdir())
    out_json, out_csv = tmp_path / "a" / "s.json", tmp_path / "b" / "rows.csv"
    summarize(experiment_name(SPEC), files, out_json, out_csv)

    assert set(tmp_path.rglob("*")) - before == {out_json.parent, out_json, out_csv.parent,
                                                 out_csv}
    summary = json.loads(out_json.read_text())
    assert {m: b["loop"] for m, b in summary["branches"].items()} == {"us": 2, "ceus": 2}
    assert summary["provenance"] == {"us": {"node": 2}, "ceus": {"node": 2}}
    rows = pd.read_csv(out_csv, dtype={"case_id": str})
    assert list(rows.columns[-4:]) == ["modality", "loop", "seed", "fold"]
    assert set(rows["seed"]) == {1} and set(rows["fold"]) == {2} and len(rows) == 6
    assert rows["std_dsc"].tolist() == pytest.approx([0.6] * 6)


def test_cost_table_reads_the_device_from_provenance(tmp_path: Path) -> None:
    P = Paths(str(tmp_path / "results"))
    node = experiment_nodes(SPEC)[0]
    files = P.node(node)
    Path(files.folder).mkdir(parents=True)
    Path(files.history).write_text("epoch,train_loss,val_loss,val_dice,lr,seconds\n"
                                   "0,1,1,0.1,0.001,2.5\n1,1,1,0.2,0.001,3.5\n")
    Path(files.provenance).write_text(json.dumps({
        "node": {"run": node.run, "modality": node.modality, "loop": node.loop},
        "device": "cuda:H200"}))
    out = tmp_path / "cost.csv"
    cost_table([files.history], [files.provenance], [P.benchmark(node)], out)  # no benchmark
    df = pd.read_csv(out)
    assert df["device"].tolist() == ["cuda:H200", "cuda:H200"]  # the node, then TOTAL
    assert df["epochs"].tolist() == [2, 2] and df["train_seconds"].iloc[0] == 6.0


def test_node_files_are_one_folder_and_parse_back() -> None:
    P = Paths("r")
    node = experiment_nodes(SPEC)[1]
    files = P.node(node)
    names = [files.best, files.last, files.resume, files.history, files.pred,
             files.provenance, files.metrics]
    assert {Path(n).parent for n in names} == {Path(P.node_dir(node))}
    assert len({Path(n).name for n in names}) == len(names)
    assert Path(files.history).name == NodeFiles.HISTORY
    assert parse_node(files.history) == node == parse_node(P.benchmark(node))
