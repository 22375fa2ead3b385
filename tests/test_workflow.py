"""Real Snakemake DAGs: the shared smoke run (tables, sharing, re-runs, provenance) and the
smallest DAG of their own for bad input, the authors' layout, folds × seeds, kill-and-resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml
from conftest import ROOT, SMOKE_LOG, SNAKEMAKE, snakemake

pytestmark = pytest.mark.dag

_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", re.M)
_COUNT = re.compile(r"^(\w+)\s+(\d+)$", re.M)
AGGREGATES = {"tables", "figures", "all"}
HEX40 = re.compile(r"[0-9a-f]{40}")


def _config(tmp_path: Path, **changes: dict) -> str:
    """A copy of the smoke config with some sections replaced; returns its path."""
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    out = tmp_path / "config.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


def _resolved(config: str) -> dict:
    from iman.config import load_config

    return load_config(Path(config) if Path(config).is_absolute() else ROOT / config)


def _table_nodes(cfg: dict, table: str) -> set[tuple[str, str, str]]:
    """(run, modality, loop) of every training node one table needs (earlier loops too)."""
    from iman.experiments import experiment_nodes, node_for, table_specs

    return {(n.run, n.modality, str(n.loop)) for _, specs in table_specs(cfg, table)
            for spec in specs for last in experiment_nodes(spec)
            for n in (node_for(spec, last.modality, loop) for loop in range(last.loop + 1))}


def _scheduled(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a Snakemake console output lists."""
    jobs = []
    for rule, body in _JOB.findall(text):
        match = re.search(r"^\s+wildcards: (.*)$", body, re.M)
        wildcards = dict(kv.split("=", 1) for kv in match[1].split(", ")) if match else {}
        jobs.append((rule, wildcards))
    return jobs


def _trained(jobs: list[tuple[str, dict[str, str]]]) -> list[tuple[str, str, str]]:
    return [(w["run"], w["modality"], w["loop"]) for r, w in jobs if r == "train"]


def _job_counts(text: str) -> dict[str, int]:
    """The "Job stats" table of a Snakemake run: rule -> number of jobs."""
    stats = text[text.index("Job stats:"):]
    return {rule: int(n) for rule, n in _COUNT.findall(stats.split("\n\n")[0])}


def _dry_run(workdir: Path, config: str = "config/smoke.yaml",
             targets: tuple[str, ...] = ("tables", "figures")) -> list[tuple[str, dict]]:
    return _scheduled(snakemake(workdir, "-n", *targets, config=config).stdout)


def _assert_commit(commit: object) -> None:
    """In a git checkout, a recorded commit is a 40-hex id of a commit of this repository
    (not necessarily HEAD: others may commit while the tests run)."""
    if not (ROOT / ".git").exists():
        assert commit is None
        return
    assert isinstance(commit, str) and HEX40.fullmatch(commit), commit
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True)
    assert known.returncode == 0, f"{commit} is not a commit of {ROOT}"


@pytest.fixture(scope="module")
def fresh_dry_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """`snakemake -n tables figures` on an empty directory."""
    return snakemake(tmp_path_factory.mktemp("fresh"), "-n", "tables", "figures")


def test_tables_are_written_with_numbers(smoke_numbers: Path) -> None:
    tables = smoke_numbers / "results" / "tables"
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


def test_stats_list_every_comparison_and_match_the_per_case_differences(
        smoke_numbers: Path) -> None:
    results = smoke_numbers / "results"
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
    # written at full precision, read back to the same bits: the interval contains its mean
    # and Holm never lowers a p, exactly
    assert ((ok["ci_low"] <= ok["mean_diff"]) & (ok["mean_diff"] <= ok["ci_high"])).all()
    assert (stats["p_holm"].dropna() >= stats.loc[stats["p_holm"].notna(), "p"]).all()
    # Structural facts only, from the per-case rows and pandas: the pairing (n_cases = the
    # test cases both rows have) and the difference (mean_diff = mean of row - reference).
    # p itself is NOT recomputed here: the test behind it (src/iman/evaluation/stats.py) is its own
    # unit-tested module (tests/test_stats.py), and copying its special cases into this
    # expected value would only repeat the implementation.
    from iman.experiments import table_comparisons

    exps = {r: (a, b) for r, _, a, b in table_comparisons(_resolved("config/smoke.yaml"),
                                                           "table1")}

    def dsc(exp: str, modality: str) -> pd.Series:
        df = pd.read_csv(results / "experiments" / exp / "per_case.csv", dtype={"case_id": str})
        df = df[(df["modality"] == modality) & (df["split"] == "test")]
        return df.set_index("case_id")["std_dsc"].dropna()

    for row in t1.itertuples():
        (row_exp,), (ref_exp,) = exps[row.row]
        a, b = dsc(row_exp, row.modality), dsc(ref_exp, row.modality)
        common = a.index.intersection(b.index)
        assert row.n_cases == len(common) > 0, row
        expected = (a[common] - b[common]).mean()
        # stats.csv is written at full precision, so the only difference is the summation
        # order of a mean of n ≤ 100 float64 terms in [−1, 1]: each order errs by at most
        # (n − 1)·2⁻⁵³·max|d| ≤ 100·2⁻⁵³, two orders by twice that
        assert len(common) <= 100
        assert row.mean_diff == pytest.approx(expected, rel=0, abs=200 * 2.0**-53), row


def test_the_perturbed_copy_recomputed_its_statistics(smoke_run: Path,
                                                      smoke_perturbed: Path) -> None:
    # the control of the perturbed check: the workflow really re-ran the statistics, the
    # tables and the cost table from the perturbed files (else it would check nothing new)
    def read(run: Path, name: str) -> pd.DataFrame:
        return pd.read_csv(run / "results" / "tables" / name)

    built, moved = read(smoke_run, "stats.csv"), read(smoke_perturbed, "stats.csv")
    assert (built["mean_diff"] != moved["mean_diff"]).any()
    assert list(built["row"]) == list(moved["row"])
    assert (read(smoke_run, "table1.csv")["us_dsc"]
            != read(smoke_perturbed, "table1.csv")["us_dsc"]).all()
    assert (read(smoke_run, "cost.csv")["wall_seconds"]
            != read(smoke_perturbed, "cost.csv")["wall_seconds"]).any()


def test_figures_and_cost_table(smoke_numbers: Path) -> None:
    figs = smoke_numbers / "results" / "figures"
    for name in ("fig3_qualitative", "margins_pathway", "table4_heatmap", "ablation_table2",
                 "ablation_table5", "training_curves_table2", "training_curves_table5",
                 "dsc_distribution", "forest_dsc"):
        assert (figs / f"{name}.png").stat().st_size > 1000, name
        assert (figs / f"{name}.pdf").stat().st_size > 1000, name
    cost = pd.read_csv(smoke_numbers / "results" / "tables" / "cost.csv",
                       keep_default_na=False)
    nodes = {(n.run, n.modality, str(n.loop)) for n in _all_nodes()}
    jobs = cost[cost["run"] != "TOTAL"]
    assert set(zip(jobs["run"], jobs["modality"], jobs["loop"].astype(str))) == nodes
    assert list(cost["run"]).count("TOTAL") == 1 and cost["run"].iloc[-1] == "TOTAL"
    total = cost.iloc[-1]
    assert float(total["wall_seconds"]) == pytest.approx(jobs["wall_seconds"].astype(float).sum())
    assert int(total["epochs"]) == jobs["epochs"].astype(int).sum() > 0


def test_fingerprint_and_protocol_check_of_the_smoke_run(smoke_run: Path) -> None:
    data = smoke_run / "results" / "data"
    fp = json.loads((data / "fingerprint.json").read_text())
    manifest = pd.read_csv(data / "manifest.csv", dtype={"case_id": str})
    assert fp["n_cases"] == len(manifest) and fp["working_size"] == 32
    assert [c["case_id"] for c in fp["cases"]] == list(manifest["case_id"])
    assert fp["ceus_frames"]["min"] == 12 and fp["modalities"]["us"]["h"]["max"] == 140
    check = json.loads((data / "protocol_check.json").read_text())
    split = json.loads((data / "splits.json").read_text())["folds"][0]
    assert check["splits"]["folds"][0]["test"]["cases"] == len(split["test"])
    # the smoke split tests a handful of cases: the tiny-fold warning names it
    assert any(f["key"] == "split" and "fewer than 9" in f["message"]
               for f in check["findings"])
    assert (smoke_run / "results" / "figures" / "data_fingerprint.png").stat().st_size > 1000
    assert "lesion eq. diameter" in (smoke_run / "results" / "figures" /
                                     "data_fingerprint.html").read_text()


def test_a_protocol_error_stops_before_any_training_job(smoke_copy: Path,
                                                        tmp_path: Path) -> None:
    # one validation case: the mismatched control (on in the smoke config) cannot give it
    # another patient's margins, so mismatched_margins would certainly fail
    cfg = _config(tmp_path, split={"sizes": {"train": 8, "val": 1}})
    proc = snakemake(smoke_copy, "tables", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "tables.table2.mismatched, split: the val subset of the hold-out split" in out
    # the split and its counts were remade, then the check stopped the run: no training job
    ran = {r for r, _ in _scheduled(out)}
    assert "split" in ran and "localcheckpoint split_counts:" in out and "train" not in ran


def test_iman_plan_makes_a_missing_fingerprint_and_suggests(smoke_copy: Path) -> None:
    (smoke_copy / "results" / "data" / "fingerprint.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "iman.cli", "plan", "--configfile",
                           str(ROOT / "config" / "smoke.yaml"), "--directory",
                           str(smoke_copy)], capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (smoke_copy / "results" / "data" / "fingerprint.json").exists()
    text = proc.stdout
    assert "n_cases:" in text and "# protocol check:" in text and "splits:" in text
    snippet = yaml.safe_load(text[text.index("\ndata:"):])
    assert set(snippet) == {"data", "frames", "mmg", "tables"}
    assert snippet["frames"]["T"] == 3 and snippet["data"]["size"] == 32


def _all_nodes() -> list:
    from iman.experiments import all_table_nodes

    return all_table_nodes(_resolved("config/smoke.yaml"))


def test_nothing_left_to_do_and_shared_jobs_listed_once(smoke_run: Path,
                                                        smoke_copy: Path) -> None:
    # the run trained every node of every table, each exactly once, though tables share them
    ran = _trained(_scheduled((smoke_run / SMOKE_LOG).read_text()))
    nodes = {(n.run, n.modality, str(n.loop)) for n in _all_nodes()}
    assert sorted(ran) == sorted(nodes)  # no node twice, none missing
    cfg = _resolved("config/smoke.yaml")
    per_table = [_table_nodes(cfg, t) for t in ("table1", "table2", "table3", "table4",
                                                 "table5")]
    assert sum(map(len, per_table)) > len(ran)  # sharing happened ...
    baseline = next(n for n in ran if n[0].startswith("unet.demo__gate__-__none")
                    and n[1] == "us" and n[2] == "0")
    assert sum(baseline in t for t in per_table) >= 3  # ... e.g. the UNet US baseline
    # and the (copied) finished run has nothing left to do: the copy keeps what Snakemake
    # needs (mtimes, metadata), which every smoke_copy test relies on
    proc = snakemake(smoke_copy, "-n", "tables", "figures", "cost")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert _scheduled(proc.stdout) == []


def test_dry_run_lists_each_shared_training_job_once(
        fresh_dry_run: subprocess.CompletedProcess) -> None:
    jobs = _trained(_scheduled(fresh_dry_run.stdout))
    assert jobs and len(jobs) == len(set(jobs))
    assert set(jobs) == {(n.run, n.modality, str(n.loop)) for n in _all_nodes()}
    counts = _job_counts(fresh_dry_run.stdout + fresh_dry_run.stderr)
    assert counts["train"] == len(jobs)  # the job stats agree
    baseline = [j for j in jobs if "unet.demo__gate__-__none" in j[0] and j[1] == "us"]
    # UNet US baseline: one job shared by Tables I, II, IV, V; Table II's epoch-matched
    # control continues that same run for one more loop (smoke: iman.loops = 1)
    assert sorted(j[2] for j in baseline) == ["0", "1"]


def test_a_changed_learning_rate_retrains_every_node_and_its_downstream(
        fresh_dry_run: subprocess.CompletedProcess, smoke_copy: Path, tmp_path: Path) -> None:
    jobs = _dry_run(smoke_copy, _config(tmp_path, train={"lr": 5.0e-3}))
    assert set(_trained(jobs)) == set(_trained(_scheduled(fresh_dry_run.stdout)))
    rules = {r for r, _ in jobs}
    assert {"evaluate", "margins", "summarize", "table", "fig_qualitative", "fig_margins",
            "fig_curves", "fig_table4", "fig_ablation", "fig_distribution"} <= rules
    assert not {"phantom", "ingest", "split", "frames"} & rules  # the data stay


def test_a_changed_us_mmg_kernel_reruns_only_what_the_us_margins_feed(
        smoke_copy: Path, tmp_path: Path) -> None:
    jobs = _dry_run(smoke_copy, _config(tmp_path, mmg={"us": {"kernel": 60,
                                                             "filter": "gaussian"}}))
    train = [w for r, w in jobs if r == "train"]
    assert train and all(int(w["loop"]) >= 1 for w in train)  # no loop-0 job
    for w in train:
        if w["modality"] == "ceus":
            # a CEUS branch changes only where both modalities' MMG settings name the run:
            # IMAN (cross) and its Table II controls (oracle, mismatched); never a self loop
            assert w["run"].split("__")[3] in {"cross", "oracle", "mismatch"}, w
        else:
            assert "us60gaussian" in w["run"], w
    assert any(w["modality"] == "us" and "__self__" in w["run"] for w in train)
    margins = [w for r, w in jobs if r == "margins"]
    assert margins and all(w["kernel"] == "60" for w in margins)
    assert not {"phantom", "ingest", "split", "frames"} & {r for r, _ in jobs}


def test_a_changed_figure_setting_reruns_only_that_figure(smoke_copy: Path,
                                                          tmp_path: Path) -> None:
    jobs = _dry_run(smoke_copy, _config(tmp_path, figures={"n_cases": 3}))
    # record_run writes the resolved config of every run (nothing reads it back)
    assert {r for r, _ in jobs} - AGGREGATES == {"fig_qualitative", "record_run"}


def test_a_new_table3_frame_count_runs_only_its_new_jobs(smoke_copy: Path,
                                                         tmp_path: Path) -> None:
    jobs = _dry_run(smoke_copy, _config(tmp_path, tables={"table3": {"frames": [1, 3, 5]}}))
    rules = {r for r, _ in jobs} - AGGREGATES
    # the paired comparisons gain the new row (stats.csv and its forest plot)
    # the recorded protocol check (and the report page showing it) re-checks the new T
    assert rules == {"frames", "train", "evaluate", "summarize", "table_data", "table",
                     "table_stats", "stats", "fig_forest", "record_run", "check_protocol",
                     "fingerprint_report"}
    assert [w["table"] for r, w in jobs if r == "table_stats"] == ["table3"]
    assert [w["T"] for r, w in jobs if r == "frames"] == ["5"]
    assert all("T5s" in w["run"] for r, w in jobs if r in ("train", "evaluate"))
    assert all("T5s" in w["exp"] for r, w in jobs if r == "summarize")
    assert [w["table"] for r, w in jobs if r == "table"] == ["table3"]


def test_changing_a_plotting_input_reruns_only_that_figure(smoke_copy: Path) -> None:
    # Snakemake skips a newer input whose recorded checksum is unchanged, so a bare touch
    # is not enough: the content must change (in the private copy)
    table = smoke_copy / "results" / "tables" / "table4.csv"
    table.write_bytes(table.read_bytes() + b"\n")
    later = time.time() + 60
    os.utime(table, (later, later))
    jobs = _dry_run(smoke_copy, targets=("figures",))
    assert [r for r, _ in jobs if r not in AGGREGATES] == ["fig_table4"]


def test_command_line_overrides_reach_the_run_with_their_types(tmp_path: Path) -> None:
    snakemake(tmp_path, "record_run", "--config", 'train={"lr": 0.005}', "seeds=[0, 1]")
    resolved = yaml.safe_load((tmp_path / "results" / "config.resolved.yaml").read_text())
    assert resolved["train"]["lr"] == 0.005 and resolved["seeds"] == [0, 1]
    assert resolved["train"]["max_epochs"] == 2  # the rest of the smoke section stays
    assert resolved["tables"]["table2"]["seeds"] == [0, 1]  # each table's seeds, as run
    provenance = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert provenance["config"] == resolved
    assert provenance["packages"]["torch"] and provenance["packages"]["snakemake"]
    _assert_commit(provenance["git"]["commit"])


def test_the_paper_run_records_schema_defaults_for_what_it_does_not_set(
        tmp_path: Path) -> None:
    # an empty weights cache: record_run trains nothing, so it needs no weight file (they are
    # checked at the first untrained node)
    (tmp_path / "weights").mkdir()
    snakemake(tmp_path, "record_run", config="config/paper.yaml",
              env={"IMAN_WEIGHTS_DIR": str(tmp_path / "weights")})
    resolved = yaml.safe_load((tmp_path / "results" / "config.resolved.yaml").read_text())
    assert resolved["train"]["loop_lr_decay"] == 1.0  # not the demo's 0.5
    assert resolved["train"]["augment"] == {"crop_scale": 0.85, "flip_p": 0.5, "rotate_deg": 15}
    assert resolved["data"]["size"] == 320 and resolved["train"]["lr"] == 1e-4


def test_every_node_and_summary_records_its_provenance(smoke_run: Path) -> None:
    import torch

    results = smoke_run / "results"
    nodes = sorted(p.parent for p in (results / "runs").glob("*/*/loop*/provenance.json"))
    assert len(nodes) == len(_all_nodes())  # every trained node of the smoke DAG
    for node in nodes:
        record = json.loads((node / "provenance.json").read_text())
        assert record["protocol"]["img_size"] == 32, node
        assert record["device"] == "cpu" and record["environment"]["packages"]["torch"], node
        _assert_commit(record["environment"]["git"]["commit"])
        ckpt = torch.load(node / "best.pt", map_location="cpu", weights_only=True)
        assert ckpt["provenance"]["device"] == "cpu", node
        assert ckpt["provenance"]["packages"] == record["environment"]["packages"], node
    loop0 = json.loads(next((results / "runs").glob("*/us/loop0/provenance.json")).read_text())
    assert loop0["protocol"]["lr"] == 1e-3  # the smoke config's step, recorded
    run = json.loads((results / "provenance.json").read_text())
    _assert_commit(run["git"]["commit"])
    summaries = sorted((results / "experiments").glob("*/summary.json"))
    assert summaries
    for path in summaries:
        summary = json.loads(path.read_text())
        for modality, branch in summary["branches"].items():
            chosen = summary["provenance"][modality]["node"]
            assert (chosen["run"], chosen["loop"]) == (branch["run"], branch["loop"]), path


TABLE1_ONLY = {"table1": {"methods": ["unet"]}}
"""Table I with one method and IMAN (iman.loops 1): the smallest DAG with every step kind:
two loop-0 baselines, their margins, two IMAN loop-1 nodes, evaluation, stats, a table."""


def test_killed_snakemake_resumes_training_and_keeps_finished_jobs(tmp_path: Path) -> None:
    cfg = _config(tmp_path, train={"max_epochs": 8, "patience": 8}, tables=TABLE1_ONLY)
    target = "results/tables/table1.csv"
    snakemake(tmp_path, "data", config=cfg)
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--cores",
           "1", target, "--configfile", cfg]
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
        assert proc.poll() is None, "snakemake ended before a job could be killed"
        time.sleep(0.2)
    else:
        raise AssertionError("no training job in progress to kill")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in done}
    killed_dir = resumes[0].parent
    killed_at = torch_epoch(resumes[0])
    shutil.rmtree(tmp_path / ".snakemake" / "locks", ignore_errors=True)
    rerun = snakemake(tmp_path, target, "--rerun-incomplete", config=cfg)
    assert rerun.returncode == 0
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # not retrained
    retrained = _trained(_scheduled(rerun.stdout + rerun.stderr))
    assert _node_of(killed_dir) in retrained
    assert not {_node_of(p.parent) for p in finished} & set(retrained)
    hist = pd.read_csv(killed_dir / "history.csv")
    assert list(hist["epoch"]) == list(range(len(hist)))  # continued, no epoch repeated
    assert len(hist) > killed_at  # ... from the checkpoint, to the end
    assert (tmp_path / target).is_file()


def torch_epoch(resume: Path) -> int:
    """Epochs done when ``resume.pt`` was written."""
    import torch

    return int(torch.load(resume, map_location="cpu", weights_only=True)["epoch"])


def _node_of(node_dir: Path) -> tuple[str, str, str]:
    """(run, modality, loop) of a node directory ``results/runs/<run>/<mod>/loop<l>``."""
    return (node_dir.parent.parent.name, node_dir.parent.name, node_dir.name[4:])


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


def test_data_prepares_the_authors_two_case_layout_and_only_training_is_stopped(
        tmp_path: Path) -> None:
    # the authors' own 2-case layout (one train, one test case): no validation case, so the
    # config cannot train on it, but `snakemake data` prepares and fingerprints it
    from iman.data.phantom import generate

    generate(tmp_path / "phantom", n_patients=2, seed=3, second_case_fraction=0.0,
             n_frames=12, height=140, width=116, video_format="frames")
    _authors_layout(tmp_path / "phantom", tmp_path / "datasets", n_test=1)
    cfg = _config(tmp_path, dataset={"source": "iman_public", "root": str(tmp_path / "datasets"),
                                     "min_frames": 3},
                  split={"use_source_split": True}, tables={"table1": {"methods": ["unet"]}})
    snakemake(tmp_path, "data", config=cfg)
    data = tmp_path / "results" / "data"
    check = json.loads((data / "protocol_check.json").read_text())
    assert check["n_errors"] >= 1
    errors = [f for f in check["findings"] if f["level"] == "error"]
    assert any("no val case" in json.dumps(e) for e in errors), errors
    assert len(pd.read_csv(data / "manifest.csv")) == 2
    # training stops at DAG time, before any job, with that error and no traceback
    run = snakemake(tmp_path, "tables", config=cfg, check=False)
    console = run.stdout + run.stderr
    assert run.returncode != 0 and "no val case" in console, console[-3000:]
    # no Python traceback (Snakemake itself names the input function it stopped in)
    assert "Traceback (most recent call last)" not in console
    assert not _trained(_scheduled(console)) and not (tmp_path / "results" / "runs").exists()


def test_folds_and_seeds_run_every_row_and_pool_each_case_once(tmp_path: Path) -> None:
    """split.folds: 3 x seeds [0, 1] on Table I alone (one method and IMAN): every row on
    every fold and seed, stats pooled over folds (each case tested in exactly one fold)."""
    cfg = _config(tmp_path, split={"folds": 3}, tables=TABLE1_ONLY)
    raw = yaml.safe_load(Path(cfg).read_text())
    raw["seeds"] = [0, 1]
    Path(cfg).write_text(yaml.safe_dump(raw))
    run = snakemake(tmp_path, "results/tables/table1.csv", config=cfg)
    results = tmp_path / "results"
    split = json.loads((results / "data" / "splits.json").read_text())["folds"]
    tested = [c for f in split for c in f["test"]]
    assert len(split) == 3 and len(tested) == len(set(tested))  # each case tested once
    # every row trained on every (seed, fold): 6 runs x (2 baselines + 2 IMAN loop-1 nodes)
    trained = _trained(_scheduled(run.stdout + run.stderr))
    assert sorted(trained) == sorted(_table_nodes(_resolved(cfg), "table1"))
    assert len(trained) == 6 * 4
    t1 = pd.read_csv(results / "tables" / "table1.csv")
    assert list(t1["method"]) == ["UNet", "IMAN"]
    assert (t1["n_runs"] == 6).all()  # 2 seeds x 3 folds
    assert (t1["us_n_cases"] == len(tested)).all()  # distinct cases, each tested once a seed
    assert t1["us_dsc_std"].notna().all()  # a sample std over the 6 runs
    runs = {p.name for p in (results / "runs").iterdir()}
    assert {r[-5:] for r in runs} == {"fold0", "fold1", "fold2"}
    per_case = pd.concat(pd.read_csv(p, dtype={"case_id": str})
                         for p in (results / "experiments").glob("unet*__L0__*/per_case.csv"))
    assert set(zip(per_case["seed"], per_case["fold"])) == {(s, f) for s in (0, 1)
                                                            for f in (0, 1, 2)}
    test_rows = per_case[(per_case["split"] == "test") & (per_case["modality"] == "us")]
    assert sorted(test_rows["case_id"]) == sorted(tested * 2)  # once per seed
    stats = pd.read_csv(results / "tables" / "table1_stats.csv")
    assert set(stats["table"]) == {"table1"} and set(stats["row"]) == {"method=unet"}
    assert (stats["n_runs"] == 6).all()
    dsc = stats[stats["metric"] == "std_dsc"]
    assert (dsc["n_cases"] == len(tested)).all()  # pooled over folds, one value per case
    p = stats["p"].dropna()
    assert len(p) and ((p >= 0) & (p <= 1)).all()
    ok = stats.dropna(subset=["mean_diff"])
    assert ((ok["ci_low"] <= ok["mean_diff"] + 1e-12)
            & (ok["mean_diff"] <= ok["ci_high"] + 1e-12)).all()
