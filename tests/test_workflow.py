"""The whole DAG on the smoke config: tables, sharing, re-runs, bad input (real Snakemake)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, snakemake

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, **changes: dict) -> str:
    """A copy of the smoke config with some sections replaced; returns its path."""
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    out = tmp_path / "config.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


def test_tables_are_written_with_numbers(smoke_run: Path) -> None:
    tables = smoke_run / "results" / "tables"
    for t in ("table1", "table2", "table3", "table4", "table5"):
        df = pd.read_csv(tables / f"{t}.csv")
        assert len(df) > 0
        dsc = [c for c in df.columns if c.endswith("_dsc") and not c.startswith("paper_")]
        assert dsc and df[dsc].notna().any().all()
        assert ((df[dsc].fillna(0.5) >= 0) & (df[dsc].fillna(0.5) <= 1)).all().all()
        md = (tables / f"{t}.md").read_text()
        assert "paper" in md and "row-HD" in md
        assert "Initialisation: every network trained from random initialisation." in md
        assert (tables / f"{t}.tex").read_text().startswith("%")
    t1 = pd.read_csv(tables / "table1.csv")
    assert list(t1["method"]) == ["UNet", "FPN", "IMAN"]
    assert t1.loc[0, "paper_us_dsc"] == pytest.approx(0.7805)


def test_stats_list_every_comparison_and_p_recomputes_from_per_case(smoke_run: Path) -> None:
    from scipy import stats as sps

    results = smoke_run / "results"
    stats = pd.read_csv(results / "tables" / "stats.csv")
    t1 = stats[(stats["table"] == "table1") & (stats["metric"] == "std_dsc")]
    assert set(t1["row"]) == {"method=unet", "method=fpn"}
    assert set(t1["reference"]) == {"method=iman"}
    t2 = stats[stats["table"] == "table2"]
    assert "mmg=0 itp=1 modal_fusion=0" in set(t2["reference"])  # MMG+ITP vs the control
    assert set(stats[stats["table"] == "table3"]["reference"]) == {"frames=1"}
    assert set(stats["table"]) == {"table1", "table2", "table3", "table4", "table5"}
    p = stats["p"].dropna()
    assert len(p) and ((p >= 0) & (p <= 1)).all()
    ok = stats.dropna(subset=["mean_diff"])
    assert ((ok["ci_low"] <= ok["mean_diff"] + 1e-12)
            & (ok["mean_diff"] <= ok["ci_high"] + 1e-12)).all()
    assert (stats["p_holm"].dropna() >= stats.loc[stats["p_holm"].notna(), "p"] - 1e-12).all()
    # docs/statistics.md: any p from the per-case rows with scipy.stats.wilcoxon
    row = t1.iloc[0]
    from iman.config import load_config
    from iman.experiments import table_comparisons

    exps = {r: (a, b) for r, _, a, b in table_comparisons(
        load_config(ROOT / "config" / "smoke.yaml"), "table1")}[row["row"]]
    def dsc(exp: str) -> pd.Series:
        df = pd.read_csv(results / "experiments" / exp / "per_case.csv", dtype={"case_id": str})
        df = df[(df["modality"] == row["modality"]) & (df["split"] == "test")]
        return df.set_index("case_id")["std_dsc"]
    diff = (dsc(exps[0][0]) - dsc(exps[1][0])).dropna()
    expected = 1.0 if (diff == 0).all() else sps.wilcoxon(diff.to_numpy()).pvalue
    assert row["p"] == pytest.approx(expected, rel=1e-5)


def test_figures_and_cost_table(smoke_run: Path) -> None:
    figs = smoke_run / "results" / "figures"
    for name in ("fig3_qualitative", "margins_pathway", "table4_heatmap", "ablation_table2",
                 "ablation_table5", "training_curves_table2", "dsc_distribution",
                 "forest_dsc"):
        assert (figs / f"{name}.png").stat().st_size > 1000
        assert (figs / f"{name}.pdf").stat().st_size > 1000
    cost = pd.read_csv(smoke_run / "results" / "tables" / "cost.csv")
    assert "TOTAL" in cost.astype(str).to_string()


def test_nothing_left_to_do_and_shared_jobs_listed_once(smoke_run: Path) -> None:
    proc = snakemake(smoke_run, "-n", "tables", "figures")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_dry_run_lists_each_shared_training_job_once(tmp_path: Path) -> None:
    out = snakemake(tmp_path, "-n", "tables", "--quiet", "rules").stdout
    proc = snakemake(tmp_path, "-n", "tables")
    jobs = re.findall(r"rule train:\n(?:.*\n)*?\s+wildcards: (.*)", proc.stdout)
    assert jobs and len(jobs) == len(set(jobs))
    baseline = [j for j in jobs if "unet.demo__gate__-__none" in j and "modality=us" in j]
    # UNet US baseline: one job shared by Tables I, II, IV, V; Table II's epoch-matched
    # control continues that same run for one more loop (smoke: iman.loops = 1)
    assert sorted(j.split("loop=")[1] for j in baseline) == ["0", "1"]
    assert "train" in out


_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", re.M)
AGGREGATES = {"tables", "figures", "all"}


def _scheduled(proc: subprocess.CompletedProcess) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for rule, body in _JOB.findall(proc.stdout):
        match = re.search(r"^\s+wildcards: (.*)$", body, re.M)
        wildcards = dict(kv.split("=", 1) for kv in match[1].split(", ")) if match else {}
        jobs.append((rule, wildcards))
    return jobs


def _dry_run(workdir: Path, config: str) -> list[tuple[str, dict[str, str]]]:
    proc = snakemake(workdir, "-n", "tables", "figures", config=config)
    return _scheduled(proc)


def test_a_changed_learning_rate_retrains_every_node_and_its_downstream(
        smoke_run: Path, tmp_path: Path) -> None:
    full = _scheduled(snakemake(tmp_path / "fresh", "-n", "tables", "figures"))
    jobs = _dry_run(smoke_run, _config(tmp_path, train={"lr": 5.0e-3}))
    trained = {tuple(w.values()) for r, w in jobs if r == "train"}
    assert trained == {tuple(w.values()) for r, w in full if r == "train"}
    rules = {r for r, _ in jobs}
    assert {"evaluate", "margins", "summarize", "table", "fig_qualitative", "fig_margins",
            "fig_curves", "fig_table4", "fig_ablation", "fig_distribution"} <= rules
    assert not {"phantom", "ingest", "split", "frames"} & rules  # the data stay


def test_a_changed_us_mmg_kernel_reruns_only_what_the_us_margins_feed(
        smoke_run: Path, tmp_path: Path) -> None:
    jobs = _dry_run(smoke_run, _config(tmp_path, mmg={"us": {"kernel": 60,
                                                            "filter": "gaussian"}}))
    train = [w for r, w in jobs if r == "train"]
    assert train and all(int(w["loop"]) >= 1 for w in train)  # no loop-0 job
    for w in train:
        if w["modality"] == "ceus":  # a CEUS branch changes only where it is IMAN's (cross)
            assert "__cross__" in w["run"], w
        else:
            assert "us60gaussian" in w["run"], w
    assert any(w["modality"] == "us" and "__self__" in w["run"] for w in train)
    margins = [w for r, w in jobs if r == "margins"]
    assert margins and all(w["kernel"] == "60" for w in margins)
    assert not {"phantom", "ingest", "split", "frames"} & {r for r, _ in jobs}


def test_a_changed_figure_setting_reruns_only_that_figure(smoke_run: Path,
                                                          tmp_path: Path) -> None:
    jobs = _dry_run(smoke_run, _config(tmp_path, figures={"n_cases": 3}))
    # record_run writes the resolved config of every run (nothing reads it back)
    assert {r for r, _ in jobs} - AGGREGATES == {"fig_qualitative", "record_run"}


def test_a_new_table3_frame_count_runs_only_its_new_jobs(smoke_run: Path,
                                                         tmp_path: Path) -> None:
    jobs = _dry_run(smoke_run, _config(tmp_path, tables={"table3": {"frames": [1, 3, 5]}}))
    rules = {r for r, _ in jobs} - AGGREGATES
    # the paired comparisons gain the new row (stats.csv and its forest plot)
    assert rules == {"frames", "train", "evaluate", "summarize", "table", "table_stats", "stats",
                     "fig_forest", "record_run"}
    assert [w["table"] for r, w in jobs if r == "table_stats"] == ["table3"]
    assert [w["T"] for r, w in jobs if r == "frames"] == ["5"]
    assert all("T5s" in w["run"] for r, w in jobs if r in ("train", "evaluate"))
    assert all("T5s" in w["exp"] for r, w in jobs if r == "summarize")
    assert [w["table"] for r, w in jobs if r == "table"] == ["table3"]


def test_command_line_overrides_reach_the_run_with_their_types(tmp_path: Path) -> None:
    snakemake(tmp_path, "record_run", "--config", 'train={"lr": 0.005}', "seeds=[0, 1]")
    resolved = yaml.safe_load((tmp_path / "results" / "config.resolved.yaml").read_text())
    assert resolved["train"]["lr"] == 0.005 and resolved["seeds"] == [0, 1]
    provenance = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert provenance["config"] == resolved
    assert provenance["packages"]["torch"] and provenance["packages"]["snakemake"]
    assert len(provenance["git"]["commit"] or "x" * 40) == 40


def test_the_paper_run_records_schema_defaults_for_what_it_does_not_set(
        tmp_path: Path) -> None:
    from iman.weights import catalog

    cache = tmp_path / "weights"  # the start-up check only needs the files to be there
    cache.mkdir()
    for f in catalog().values():
        (cache / f.filename).write_bytes(b"placeholder")
    snakemake(tmp_path, "record_run", config="config/paper.yaml",
              env={"IMAN_WEIGHTS_DIR": str(cache)})
    resolved = yaml.safe_load((tmp_path / "results" / "config.resolved.yaml").read_text())
    assert resolved["train"]["loop_lr_decay"] == 1.0  # not the demo's 0.5
    assert resolved["train"]["augment"] == {"crop_scale": 0.85, "flip_p": 0.5, "rotate_deg": 15}
    assert resolved["data"]["size"] == 320 and resolved["train"]["lr"] == 1e-4


def test_every_node_and_summary_records_its_provenance(smoke_run: Path) -> None:
    import torch

    results = smoke_run / "results"
    node = next((results / "runs").glob("*/us/loop0"))
    record = json.loads((node / "provenance.json").read_text())
    assert record["protocol"]["img_size"] == 32 and record["protocol"]["lr"] == 1e-3
    assert record["device"] == "cpu" and record["environment"]["packages"]["torch"]
    ckpt = torch.load(node / "best.pt", map_location="cpu", weights_only=False)
    assert ckpt["provenance"]["device"] == "cpu"
    assert ckpt["provenance"]["packages"] == record["environment"]["packages"]
    summary = json.loads(next((results / "experiments").glob("*/summary.json")).read_text())
    for modality, branch in summary["branches"].items():
        chosen = summary["provenance"][modality]["node"]
        assert (chosen["run"], chosen["loop"]) == (branch["run"], branch["loop"])


def test_changing_a_plotting_input_reruns_only_that_figure(smoke_run: Path) -> None:
    # Snakemake skips a newer input whose recorded checksum is unchanged, so a bare touch
    # is not enough: the content must change (restored afterwards for the other tests).
    table = smoke_run / "results" / "tables" / "table4.csv"
    original, stat = table.read_bytes(), table.stat()
    try:
        table.write_bytes(original + b"\n")
        later = time.time() + 60
        os.utime(table, (later, later))
        proc = snakemake(smoke_run, "-n", "figures", "--quiet", "rules")
    finally:
        table.write_bytes(original)
        os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    text = proc.stdout + proc.stderr
    assert "fig_table4" in text and "train" not in text and "fig_qualitative" not in text


def test_killed_snakemake_resumes_training_and_keeps_finished_jobs(tmp_path: Path) -> None:
    cfg = _config(tmp_path, train={"max_epochs": 8, "patience": 8})
    snakemake(tmp_path, "data", config=cfg)
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--cores",
           "1", "tables", "--configfile", cfg]
    env = {**os.environ, "IMAN_RESUME_EVERY_S": "0"}  # a resumable checkpoint every epoch
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    runs = tmp_path / "results" / "runs"
    t0 = time.time()
    while time.time() - t0 < 600:
        done = [p.with_name("best.pt") for p in runs.glob("*/*/loop*/pred.npz")]
        resumes = [p for p in runs.glob("*/*/loop*/resume.pt") if not
                   (p.parent / "pred.npz").exists()]
        if done and resumes:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no training job in progress to kill")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime for p in done}
    killed_dir = resumes[0].parent
    shutil.rmtree(tmp_path / ".snakemake" / "locks", ignore_errors=True)
    rerun = snakemake(tmp_path, "tables", "--rerun-incomplete", config=cfg)
    assert rerun.returncode == 0
    assert all(p.stat().st_mtime == t for p, t in finished.items())  # not retrained
    hist = pd.read_csv(killed_dir / "history.csv")
    assert list(hist["epoch"]) == list(range(len(hist)))  # continued, no epoch repeated


def test_broken_case_sheet_fails_with_one_report_and_no_manifest(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    data = tmp_path / "data"
    (data / "ceus" / "C2").mkdir(parents=True)
    img = np.full((64, 64), 100, np.uint8)
    cv2.imwrite(str(data / "us1.png"), img)
    cv2.imwrite(str(data / "empty.png"), np.zeros((64, 64), np.uint8))
    (data / "corrupt.png").write_bytes(b"not a png")
    cv2.imwrite(str(data / "ceus" / "C2" / "0.png"), img)
    sheet = tmp_path / "cases.csv"
    sheet.write_text(
        "case_id,patient_id,us_image,us_mask,ceus,ceus_mask\n"
        "C1,P1,data/us1.png,data/missing.png,data/ceus/C1,data/empty.png\n"
        "C2,P2,data/corrupt.png,data/empty.png,data/ceus/C2,data/empty.png\n"
        "C3,,data/us1.png,data/empty.png,data/ceus/C2,data/empty.png\n")
    cfg = _config(tmp_path, dataset={"source": "sheet", "root": str(sheet), "min_frames": 3})
    proc = snakemake(tmp_path, "data", config=cfg, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "ingest.log").read_text()
    for needle in ("C1", "missing.png", "C2", "corrupt.png", "C3", "patient", "empty"):
        assert needle in log
    assert not (tmp_path / "results" / "data" / "manifest.csv").exists()
    assert not (tmp_path / "results" / "data" / "cache").exists()
    assert "Traceback" not in log  # the problem list alone, also on the console:
    console = proc.stdout + proc.stderr
    assert all(needle in console for needle in ("C1", "missing.png", "corrupt.png"))


def _authors_layout(phantom: Path, root: Path, n_test: int) -> tuple[list[str], list[str]]:
    """Rearrange a phantom (frame folders) into the authors' `datasets` folder; case ids."""
    rows = pd.read_csv(phantom / "cases.csv", dtype=str)
    ids: dict[str, list[str]] = {"train": [], "test": []}
    for i, row in enumerate(rows.itertuples()):
        split = "test" if i < n_test else "train"
        us, ce = root / "us_small" / split, root / "ceus_frames" / split
        for sub in (us / "img", us / "labelcol", ce / "labelcol"):
            sub.mkdir(parents=True, exist_ok=True)
        us_img = cv2.imread(str(phantom / row.us_image), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(us / "img" / f"{i:05d}.jpg"), cv2.cvtColor(us_img, cv2.COLOR_GRAY2BGR))
        shutil.copy(phantom / row.us_mask, us / "labelcol" / f"{i:05d}.png")
        shutil.copytree(phantom / row.ceus, ce / "img" / str(i))
        shutil.copy(phantom / row.ceus_mask, ce / "labelcol" / f"{i:05d}.png")
        ids[split].append(f"{i:05d}")
    return ids["train"], ids["test"]


def test_authors_folder_layout_runs_to_table1_on_its_own_test_split(tmp_path: Path) -> None:
    from iman.data.phantom import generate

    generate(tmp_path / "phantom", n_patients=10, seed=3, second_case_fraction=0.0,
             n_frames=12, height=140, width=116, video_format="frames")
    train, test = _authors_layout(tmp_path / "phantom", tmp_path / "datasets", n_test=3)
    cfg = _config(tmp_path, dataset={"source": "iman_public", "root": str(tmp_path / "datasets"),
                                     "min_frames": 3},
                  split={"use_source_split": True}, tables={"table1": {"methods": ["unet"]}})
    snakemake(tmp_path, "results/tables/table1.csv", config=cfg)
    results = tmp_path / "results"
    split = json.loads((results / "data" / "splits.json").read_text())["folds"][0]
    assert split["test"] == test
    assert sorted(split["train"] + split["val"]) == train and split["val"]
    manifest = pd.read_csv(results / "data" / "manifest.csv", dtype={"case_id": str})
    assert "no patient information" in manifest["warnings"].iloc[0]
    table = pd.read_csv(results / "tables" / "table1.csv")
    dsc = [c for c in table.columns if c.endswith("_dsc") and not c.startswith("paper_")]
    assert table[dsc].notna().all().all()
    for run in (results / "runs").glob("*/*/loop0"):
        metrics = pd.read_csv(run / "metrics.csv", dtype={"case_id": str})
        assert sorted(metrics.loc[metrics["split"] == "test", "case_id"]) == test
        assert sorted(metrics.loc[metrics["split"] == "val", "case_id"]) == split["val"]


def test_folds_and_seeds_run_every_row_and_pool_each_case_once(tmp_path: Path) -> None:
    """split.folds: 3 x seeds [0, 1] on a trimmed smoke config: every table row on every
    fold and seed, stats pooled over folds (each case tested in exactly one fold)."""
    cfg = _config(tmp_path, split={"folds": 3},
                  tables={"table1": {"methods": ["unet"]}, "table2": {"control": False},
                          "table3": {"frames": [1, 3]},
                          "table4": {"kernels": [50], "filters": ["none"],
                                     "ceus_only_kernels": []},
                          "table5": {"backbones": ["unet"]}})
    raw = yaml.safe_load(Path(cfg).read_text())
    raw["seeds"] = [0, 1]
    Path(cfg).write_text(yaml.safe_dump(raw))
    snakemake(tmp_path, "tables", config=cfg)
    results = tmp_path / "results"
    split = json.loads((results / "data" / "splits.json").read_text())["folds"]
    tested = [c for f in split for c in f["test"]]
    assert len(split) == 3 and len(tested) == len(set(tested))  # each case tested once
    t1 = pd.read_csv(results / "tables" / "table1.csv")
    assert (t1["n_runs"] == 6).all()  # 2 seeds x 3 folds
    assert (t1["us_n_cases"] == 2 * len(tested)).all()  # every case, once per seed
    assert t1["us_dsc_std"].notna().all()  # a sample std over the 6 runs
    runs = {p.name for p in (results / "runs").iterdir()}
    assert {r[-5:] for r in runs} == {"fold0", "fold1", "fold2"}
    per_case = pd.concat(pd.read_csv(p, dtype={"case_id": str})
                         for p in (results / "experiments").glob("unet*__L0__*/per_case.csv"))
    assert set(zip(per_case["seed"], per_case["fold"])) == {(s, f) for s in (0, 1)
                                                            for f in (0, 1, 2)}
    stats = pd.read_csv(results / "tables" / "stats.csv")
    assert set(stats["table"]) == {"table1", "table2", "table3", "table4", "table5"}
    assert (stats["n_runs"] == 6).all()
    dsc = stats[stats["metric"] == "std_dsc"]
    assert (dsc["n_cases"] == len(tested)).all()  # pooled over folds, one value per case
    p = stats["p"].dropna()
    assert len(p) and ((p >= 0) & (p <= 1)).all()
    ok = stats.dropna(subset=["mean_diff"])
    assert ((ok["ci_low"] <= ok["mean_diff"] + 1e-12)
            & (ok["mean_diff"] <= ok["ci_high"] + 1e-12)).all()
