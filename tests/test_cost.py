"""Cost accounting from Snakemake benchmark TSVs and training histories (iman.reporting.cost)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from iman.reporting.cost import COLUMNS, collect_costs, history_node, write_cost_table

__all__: list[str] = []

# exactly what snakemake 9 writes (snakemake.benchmark.print_benchmark_tsv), tab-separated
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
HISTORY_HEADER = "epoch,train_loss,val_loss,val_dice,lr,seconds\n"


def _bench(root: Path, run: str, modality: str, loop: int, *rows: str) -> Path:
    path = root / "results" / "benchmarks" / "train" / run / modality / f"loop{loop}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def _history(root: Path, run: str, modality: str, loop: int, seconds: list[float],
             device: str | None = None, epochs: list[int] | None = None) -> Path:
    """A node's history.csv and, with ``device``, its provenance.json (as the train rule
    writes them); returns the history."""
    node = root / "results" / "runs" / run / modality / f"loop{loop}"
    node.mkdir(parents=True, exist_ok=True)
    epochs = epochs if epochs is not None else list(range(1, len(seconds) + 1))
    lines = [f"{e},0.5,0.6,0.7,0.001,{s}\n" for e, s in zip(epochs, seconds, strict=True)]
    (node / "history.csv").write_text(HISTORY_HEADER + "".join(lines))
    if device is not None:
        _provenance(node / "provenance.json", run, modality, loop, device)
    return node / "history.csv"


def _provenance(path: Path, run: str, modality: str, loop: int, device: str) -> Path:
    """The fields of a node's provenance.json that the cost table reads."""
    record = {"node": {"run": run, "modality": modality, "loop": loop}, "device": device}
    path.write_text(json.dumps(record))
    return path


def _provenances(histories: list[Path]) -> list[Path]:
    """The provenance records written beside ``histories``."""
    return [p for h in histories if (p := h.with_name("provenance.json")).is_file()]


def test_node_key_parses_paths() -> None:
    assert history_node(Path("/r/results/benchmarks/train/iman/us/loop0.tsv")) == ("iman", "us", 0)
    assert history_node(Path("results/runs/t3/ceus/loop12/history.csv")) == ("t3", "ceus", 12)
    # run names may contain "/" and even the anchor's name
    assert history_node(Path("benchmarks/train/a/train/us/loop1.tsv")) == ("a/train", "us", 1)
    for bad in ["results/benchmarks/train/us/loop0.tsv", "results/runs/r/us/x/history.csv",
                "results/benchmarks/other/r/us/loop0.tsv", "loop0.tsv"]:
        with pytest.raises(ValueError):
            history_node(Path(bad))


def test_collect_costs_rows(tmp_path: Path) -> None:
    benches = [
        _bench(tmp_path, "iman", "us", 0,
               "125.3456\t0:02:05\t812.40\t2101.33\t790.12\t795.00\t10.20\t3.40\t95.31\t119.40"),
        # a job that ended before the first sample: memory columns are NA
        _bench(tmp_path, "iman", "ceus", 0,
               "0.2000\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA"),
        # benchmark repeat(): one row per repeat -> seconds add up, RSS is the max
        _bench(tmp_path, "iman", "us", 1,
               "10.0000\t0:00:10\t300.00\t900.00\t290.00\t291.00\t0.00\t0.00\t50.00\t9.00",
               "20.5000\t0:00:20\t450.50\t900.00\t440.00\t441.00\t0.00\t0.00\t50.00\t19.00"),
        # no history for this one (e.g. the job failed)
        _bench(tmp_path, "unet", "us", 0,
               "5.0000\t0:00:05\t100.00\t200.00\t90.00\t91.00\t0.00\t0.00\t10.00\t4.00"),
    ]
    hists = [
        _history(tmp_path, "iman", "us", 0, [40.0, 41.5, 42.0], device="cuda:NVIDIA H100 80GB"),
        _history(tmp_path, "iman", "ceus", 0, [0.1], device="cpu"),
        # resumed after preemption: epoch 2 was logged twice; counted once (the last one)
        _history(tmp_path, "iman", "us", 1, [3.0, 4.0, 5.0, 6.0], epochs=[1, 2, 2, 3]),
    ]
    df = collect_costs(benches, hists, _provenances(hists))

    assert list(df.columns) == COLUMNS
    assert list(zip(df["run"], df["modality"], df["loop"])) == [
        ("iman", "ceus", 0), ("iman", "us", 0), ("iman", "us", 1), ("unet", "us", 0)]
    by = df.set_index(["run", "modality", "loop"])
    assert by.loc[("iman", "us", 0), "wall_seconds"] == pytest.approx(125.3456)
    assert by.loc[("iman", "us", 0), "max_rss_mb"] == pytest.approx(812.40)
    assert by.loc[("iman", "us", 0), "device"] == "cuda:NVIDIA H100 80GB"
    assert by.loc[("iman", "us", 0), "epochs"] == 3
    assert by.loc[("iman", "us", 0), "train_seconds"] == pytest.approx(123.5)
    assert pd.isna(by.loc[("iman", "ceus", 0), "max_rss_mb"])
    assert by.loc[("iman", "ceus", 0), "device"] == "cpu"
    assert by.loc[("iman", "us", 1), "wall_seconds"] == pytest.approx(30.5)
    assert by.loc[("iman", "us", 1), "max_rss_mb"] == pytest.approx(450.5)
    assert by.loc[("iman", "us", 1), "epochs"] == 3
    assert by.loc[("iman", "us", 1), "train_seconds"] == pytest.approx(3.0 + 5.0 + 6.0)
    assert by.loc[("iman", "us", 1), "device"] == "unknown"  # no provenance record
    assert pd.isna(by.loc[("unet", "us", 0), "epochs"])
    assert by.loc[("unet", "us", 0), "wall_seconds"] == pytest.approx(5.0)


def test_write_cost_table_total(tmp_path: Path) -> None:
    benches = [
        _bench(tmp_path, "iman", "us", 0,
               "100.0000\t0:01:40\t800.00\t0\t0\t0\t0\t0\t0\t0"),
        _bench(tmp_path, "iman", "ceus", 0,
               "50.2500\t0:00:50\t1200.00\t0\t0\t0\t0\t0\t0\t0"),
    ]
    hists = [_history(tmp_path, "iman", "us", 0, [1.0, 2.0], device="cpu"),
             _history(tmp_path, "iman", "ceus", 0, [3.0], device="cuda:A100")]
    out = tmp_path / "results" / "tables" / "cost.csv"
    total = write_cost_table(collect_costs(benches, hists, _provenances(hists)), out)

    assert total == pytest.approx(150.25)
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert list(table["run"]) == ["iman", "iman", "TOTAL"]
    last = table.iloc[-1]
    assert last["wall_seconds"] == pytest.approx(150.25)
    assert last["max_rss_mb"] == pytest.approx(1200.0)
    assert last["epochs"] == 3
    assert last["train_seconds"] == pytest.approx(6.0)
    assert last["device"] == "cpu;cuda:A100"


def test_write_cost_table_empty(tmp_path: Path) -> None:
    out = tmp_path / "cost.csv"
    assert write_cost_table(collect_costs([], []), out) == 0.0
    assert list(pd.read_csv(out)["run"]) == ["TOTAL"]


def test_rejects_files_of_the_wrong_kind(tmp_path: Path) -> None:
    bad = tmp_path / "results" / "benchmarks" / "train" / "r" / "us" / "loop0.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark"):
        collect_costs([bad], [])
    hist = _history(tmp_path, "r", "us", 0, [1.0])
    hist.write_text("epoch,loss\n1,0.3\n")
    with pytest.raises(ValueError, match="not a training history"):
        collect_costs([], [hist])


def test_benchmark_written_by_snakemake(tmp_path: Path) -> None:
    """A real `benchmark:` file from snakemake, for a job holding ~200 MB for 2 s."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f"""\
        rule train:
            output: "results/runs/{{run}}/{{modality}}/loop{{loop}}/history.csv"
            benchmark: "results/benchmarks/train/{{run}}/{{modality}}/loop{{loop}}.tsv"
            shell:
                "{sys.executable} -c 'import time; x = bytearray(200 << 20); time.sleep(2)' && "
                "printf 'epoch,train_loss,val_loss,val_dice,lr,seconds\\\\n"
                "1,1,1,0.1,0.001,0.9\\\\n'"
                " > {{output}}"
        """))
    target = "results/runs/demo/us/loop0/history.csv"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", target],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = tmp_path / "results" / "benchmarks" / "train" / "demo" / "us" / "loop0.tsv"
    assert bench.read_text().startswith(HEADER)  # the header the hand-written files use

    record = _provenance(tmp_path / target.replace("history.csv", "provenance.json"), "demo",
                         "us", 0, "cpu")  # what the train rule writes beside its history
    df = collect_costs([bench], [tmp_path / target], [record])
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["run"], row["modality"], row["loop"]) == ("demo", "us", 0)
    assert row["wall_seconds"] >= 2.0
    assert row["max_rss_mb"] >= 150.0
    assert (row["device"], row["epochs"], row["train_seconds"]) == ("cpu", 1, 0.9)


def test_estimate_scales_measured_rates_to_the_planned_jobs() -> None:
    from iman.experiments import Node
    from iman.reporting.cost import estimate_hours

    unet = "unet.demo__gate__-__none__-__-__seed0"
    fpn = "fpn.demo__gate__-__none__-__-__seed0"
    cost = pd.DataFrame([
        # 2 epochs in 4 s + 10 s overhead; 3 epochs in 9 s + 6 s overhead → 13/5 s per epoch
        {"run": unet, "modality": "us", "loop": 0, "wall_seconds": 14.0, "epochs": 2,
         "train_seconds": 4.0},
        {"run": unet, "modality": "us", "loop": 1, "wall_seconds": 15.0, "epochs": 3,
         "train_seconds": 9.0},
        {"run": "TOTAL", "modality": "", "loop": None, "wall_seconds": 29.0, "epochs": 5,
         "train_seconds": 13.0},
    ])
    planned = [Node(unet, "us", loop) for loop in range(4)] + [Node(fpn, "us", 0)]
    est = estimate_hours(cost, planned, epochs=100).set_index("method")
    assert est.loc["unet", "planned_jobs"] == 4 and est.loc["unet", "measured_jobs"] == 2
    assert est.loc["unet", "s_per_epoch"] == pytest.approx(13 / 5)
    assert est.loc["unet", "overhead_s"] == pytest.approx(8.0)
    assert est.loc["unet", "hours"] == pytest.approx(4 * (8 + 2.6 * 100) / 3600)
    assert est.loc["fpn", "measured_jobs"] == 0 and pd.isna(est.loc["fpn", "hours"])
