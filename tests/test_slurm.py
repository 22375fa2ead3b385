"""Workflow execution on a real local SLURM cluster (slurmctld + slurmd, fake GPUs).

The module fixture brings the cluster up with ``scripts/slurm-local.sh`` (needs root and apt)
and stops only the daemons it started. Without root (a researcher's ``make test``) the tests
are skipped with that reason; under ``CI=true`` they always run, and FAIL with the reason if
SLURM cannot be brought up. ``IMAN_SKIP_SLURM=1`` skips them explicitly (never under CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__: list[str] = []

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-local.sh"
MINI = REPO / "tests" / "slurm_mini" / "Snakefile"
CI_PROFILE = REPO / "profiles" / "slurm-ci"
NODE = "localhost"
LOG_NAME = re.compile(r"^(\d+)(_\d+)?\.log$")  # <jobid>.log, or <arrayid>_<task>.log


def _node_ready() -> bool:
    """True when a SLURM controller answers and the node accepts jobs."""
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-n", NODE, "-o", "%t"],
            capture_output=True, text=True, timeout=15, check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    state = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    return out.returncode == 0 and re.fullmatch(r"(idle|mix|alloc|comp)[a-z]*", state) is not None


def _script(action: str, state: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``slurm-local.sh <action>`` with STATE=<state>."""
    env = {**os.environ, "STATE": str(state)}
    return subprocess.run(
        ["bash", str(SCRIPT), action],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Path | None]:
    """A usable local SLURM cluster; yields the STATE dir, or None if it was already up."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    if os.environ.get("IMAN_SKIP_SLURM") == "1" and not in_ci:
        pytest.skip("IMAN_SKIP_SLURM=1: SLURM tests skipped on request")
    if _node_ready():
        print(f"\n[slurm] using the cluster that was already up (node {NODE})")
        yield None  # not ours: leave it running
        return
    if os.geteuid() != 0:
        reason = "cannot bring up SLURM: scripts/slurm-local.sh needs root (and apt)"
        if in_ci:
            pytest.fail(f"{reason}; CI=true requires the SLURM tests to run")
        pytest.skip(f"{reason}; not root and not CI, so the SLURM tests are skipped")
    # not under pytest's 0700 tmp dirs: slurmctld runs as user slurm and writes logs here
    state = Path(tempfile.mkdtemp(prefix="iman-slurm-"))
    state.chmod(0o755)
    t0 = time.monotonic()
    try:
        up = _script("up", state, timeout=900)
    except subprocess.TimeoutExpired as err:
        _script("down", state, timeout=120)
        pytest.fail(f"cannot bring up SLURM: `slurm-local.sh up` timed out: {err}")
    if up.returncode != 0:
        down = _script("down", state, timeout=120)
        pytest.fail(
            f"cannot bring up SLURM (exit {up.returncode}):\n{up.stderr[-3000:]}\n"
            f"{down.stderr[-1000:]}\n(set IMAN_SKIP_SLURM=1 to skip these tests explicitly)"
        )
    print(f"\n[slurm] bring-up: {time.monotonic() - t0:.1f} s")
    try:
        yield state
    finally:
        down = _script("down", state, timeout=120)
        assert down.returncode == 0, down.stderr
        shutil.rmtree(state, ignore_errors=True)


def _snakemake(args: list[str], cwd: Path, timeout: float,
               env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run snakemake in its own process group; kill the whole group on timeout."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=env,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"snakemake timed out after {timeout:.0f} s:\n{out[-6000:]}")
    return proc.returncode, out, time.monotonic() - t0


def _squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> state, as the controller knows it (finished jobs stay for MinJobAge)."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T", "-j", ",".join(job_ids)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


def _log_job_ids(logdir: Path) -> dict[str, list[str]]:
    """Rule name -> SLURM job ids from ``.snakemake/slurm_logs/rule_<rule>/**/<jobid>.log``."""
    ids: dict[str, list[str]] = {}
    for log in sorted(logdir.rglob("*.log")):
        m = LOG_NAME.match(log.name)
        assert m, f"slurm log not named by a job id: {log}"
        rule = log.relative_to(logdir).parts[0].removeprefix("rule_")
        ids.setdefault(rule, []).append(m.group(1))
    return ids


def test_mini_workflow_with_local_profile(tmp_path: Path) -> None:
    """The same workflow with profiles/local runs without a scheduler (no SLURM job ids)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    rc, out, _ = _snakemake(
        ["-s", str(MINI), "--workflow-profile", str(REPO / "profiles" / "local"),
         "--directory", str(tmp_path)],
        cwd=tmp_path, timeout=300, env=env,
    )
    assert rc == 0, out[-4000:]
    assert "Provided cores: 4" in out
    jobs = [line.split("job=")[1].split()[0]
            for line in (tmp_path / "results" / "summary.tsv").read_text().splitlines()]
    assert jobs == ["none"] * 3
    assert not (tmp_path / ".snakemake" / "slurm_logs").exists()


def test_mini_workflow_on_slurm(slurm_cluster: Path | None, tmp_path: Path) -> None:
    """Two GPU jobs (gpu from the slurm-ci profile) and one CPU job run as real SLURM jobs."""
    rc, out, wall = _snakemake(
        ["-s", str(MINI), "--workflow-profile", str(CI_PROFILE), "--directory", str(tmp_path)],
        cwd=tmp_path, timeout=600,
    )
    print(f"\n[slurm] mini workflow (3 jobs, 2 waves): {wall:.1f} s")
    assert rc == 0, out[-6000:]

    rows = {}
    for line in (tmp_path / "results" / "summary.tsv").read_text().splitlines():
        name, fields = line.split("\t")
        rows[name] = dict(f.split("=", 1) for f in fields.split())
    assert set(rows) == {"results/train/a.txt", "results/train/b.txt", "tables"}

    job_ids = [r["job"] for r in rows.values()]
    assert all(j.isdigit() for j in job_ids), rows
    assert len(set(job_ids)) == 3, "each rule instance must be its own SLURM job"
    states = _squeue_states(job_ids)
    assert {j: states.get(j) for j in job_ids} == dict.fromkeys(job_ids, "COMPLETED")

    # gpu: 1 from the profile -> --gpus=1 -> SLURM binds one (fake) GPU per job
    train_gpus = [rows[f"results/train/{s}.txt"]["cuda"] for s in "ab"]
    assert all(g.isdigit() for g in train_gpus), train_gpus
    assert rows["tables"]["cuda"] == "unset", "a CPU job must not get a GPU"

    # slurm-keep-successful-logs: one log per job, named by its job id
    logs = _log_job_ids(tmp_path / ".snakemake" / "slurm_logs")
    assert sorted(logs.get("train", [])) == sorted(rows[f"results/train/{s}.txt"]["job"]
                                                   for s in "ab")
    assert logs.get("tables") == [rows["tables"]["job"]]


def _copy_repo(dest: Path) -> None:
    """Copy the working tree (tracked + untracked, not ignored) to ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


SLURM_TABLE = "results/tables/table1.csv"
SLURM_CONFIG = "tables:\n  table1: {methods: [unet]}\n"
"""Table I of the smoke config with one method and IMAN (iman.loops 1): the smallest target
that has training (two loop-0 baselines, two IMAN loop-1 nodes), margins, evaluation, paired
stats and a table."""


def test_smoke_workflow_on_slurm(slurm_cluster: Path | None, tmp_path: Path) -> None:
    """`snakemake results/tables/table1.csv --workflow-profile profiles/slurm-ci` on the smoke
    config with Table I trimmed to one method: every training node is its own SLURM job
    (gpu: 1 from the profile, a fake GPU, so it trains on the CPU); margins, evaluation, stats
    and the table are local rules on the submit host."""
    work = tmp_path / "repo"
    _copy_repo(work)
    (work / "slurm_table1.yaml").write_text(SLURM_CONFIG)
    timeout = float(os.environ.get("IMAN_SLURM_SMOKE_TIMEOUT", "900"))
    rc, out, wall = _snakemake(
        # the target goes before --configfile, which takes several values
        [SLURM_TABLE, "--workflow-profile", "profiles/slurm-ci", "--configfile",
         "config/smoke.yaml", "slurm_table1.yaml"],
        cwd=work, timeout=timeout,
    )
    print(f"\n[slurm] smoke workflow `{SLURM_TABLE}` (Table I: UNet + IMAN): {wall:.1f} s")
    assert rc == 0, out[-8000:]

    results = work / "results"
    table = (results / "tables" / "table1.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["UNet", "IMAN"], table
    nodes = sorted(p.parent for p in (results / "runs").glob("*/*/loop*/provenance.json"))
    assert [n.name for n in nodes].count("loop0") == 2 and len(nodes) == 4, nodes
    for node in nodes:  # trained, evaluated; loop-0 predictions made the margins IMAN read
        assert (node / "metrics.csv").is_file(), node
        assert json.loads((node / "provenance.json").read_text())["device"] == "cpu", node
    assert len(list((results / "runs").glob("*/*/loop0/margins_k*.npz"))) == 2
    assert (results / "tables" / "table1_stats.csv").is_file()

    logs = _log_job_ids(work / ".snakemake" / "slurm_logs")
    # only training goes to SLURM, one job per node; the light rules stay local
    assert sorted(logs) == ["train"], f"SLURM jobs of other rules: {sorted(logs)}"
    assert len(set(logs["train"])) == len(nodes)
    for log in (work / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"):
        assert "gpu=1" in log.read_text(), f"the slurm-ci profile must give train gpu=1: {log}"
    # the finished jobs are still known to the controller (MinJobAge=300) and completed
    states = _squeue_states(logs["train"])
    assert {j: states.get(j) for j in logs["train"]} == dict.fromkeys(logs["train"],
                                                                      "COMPLETED")
