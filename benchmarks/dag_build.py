"""How long Snakemake takes to build the DAG: dry-run wall time of three configs.

Every ``snakemake`` call on the submit host (a status check, a rerun after a preemption, the
report) builds the whole DAG first, so its cost is paid again and again (issue 27). This
prints the wall time and the job count of ``snakemake -n`` for

* ``smoke``: config/smoke.yaml;
* ``paper``: config/paper.yaml (1,510 training jobs);
* ``paper3``: config/paper.yaml with ``seeds: [0, 1, 2]``;
* ``job``: one training job of ``paper`` alone (its first Table I method, US, loop 0), named
  as a cluster executor names it (``--target-jobs train:run=...,modality=us,loop=0
  --allowed-rules train``): the start-up the job's own Snakemake pays before its script
  runs (it parses the workflow, resolves the config, builds a one-job DAG);

each on a phantom of ``--patients`` patients (30) with ``model.pretrained: false``. The data
stage (phantom, ingest, split, fingerprint, split counts) is run first, once per work
directory, because the training jobs hang off the checkpoint ``split_counts``: without its
output a dry run stops there.

Give several source trees (a checkout or ``git archive`` of another commit) with ``--trees``
to compare versions: the runs are interleaved (A B A B ...) so that a busy machine slows both
alike; the ratio column is each tree's median against the first tree's.

    .venv/bin/python benchmarks/dag_build.py                         # this tree, 3 repeats
    .venv/bin/python benchmarks/dag_build.py --trees /tmp/old . --cases paper3 --repeats 2
    .venv/bin/python benchmarks/dag_build.py --trees /tmp/old . --dump /tmp/jobs

``--dump DIR`` writes, per tree and case, every job of the dry run (rule, wildcards, input,
output and params) to ``DIR/<tree>-<case>.json`` and says whether the trees' lists are equal:
a speed-up must not change the DAG.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
CASES = {"smoke": ("smoke.yaml", []), "paper": ("paper.yaml", []),
         "paper3": ("paper.yaml", ["seeds=[0, 1, 2]"]), "job": ("paper.yaml", [])}
"""Case -> (config file, extra ``--config`` overrides)."""
DATA = {"smoke.yaml": "smoke", "paper.yaml": "paper"}
"""Config file -> its data directory under the work directory (the seeds share the data)."""

# Runs snakemake in this process, writing every job of the dry run to argv[1] (JSON).
DUMP = """
import json, sys
from snakemake.cli import main  # first: it imports snakemake.dag without a cycle
from snakemake import dag

out = sys.argv.pop(1)
stats = dag.DAG.stats

best = []

def dumping_stats(self):  # called more than once: keep the fullest list
    jobs = sorted(({"rule": j.rule.name, "wildcards": dict(j.wildcards.items()),
                    "input": sorted(map(str, j.input)), "output": sorted(map(str, j.output)),
                    "params": dict(j.params.items())} for j in self.needrun_jobs()),
                  key=lambda d: (d["rule"], json.dumps(d["wildcards"], sort_keys=True)))
    if len(jobs) >= len(best):
        best[:] = jobs
        with open(out, "w") as fh:
            json.dump(best, fh, sort_keys=True, default=str, indent=0)
    return stats(self)

dag.DAG.stats = dumping_stats
sys.argv[0] = "snakemake"
main()
"""


def overrides(case: str, patients: int) -> list[str]:
    """``--config`` overrides of a case: the phantom, random init, the case's own."""
    dataset = {"source": "phantom", "phantom": {"n_patients": patients}}
    return [f"dataset={json.dumps(dataset)}", 'model={"pretrained": false}', *CASES[case][1]]


def one_job(tree: Path, case: str, patients: int) -> list[str]:
    """Target of the ``job`` case: one loop-0 US node of the first Table I method."""
    import yaml

    from iman.config import resolve_config
    from iman.experiments import node_for, table_specs

    cfg = resolve_config([tree / "config" / CASES[case][0]],
                         {k: yaml.safe_load(v) for k, v in
                          (o.split("=", 1) for o in overrides(case, patients))})
    node = node_for(table_specs(cfg, "table1")[0][1][0], "us", 0)
    return ["--target-jobs", f"train:run={node.run},modality={node.modality},loop={node.loop}",
            "--allowed-rules", "train"]


def command(tree: Path, case: str, workdir: Path, patients: int, *args: str) -> list[str]:
    """The snakemake command line of ``case`` run from ``tree`` in ``workdir``."""
    if case == "job":
        args = (*args, *one_job(tree, case, patients))
    return ["-s", str(tree / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            *args, "--configfile", str(tree / "config" / CASES[case][0]),
            "--config", *overrides(case, patients)]


def run(tree: Path, argv: list[str], prefix: list[str] | None = None,
        ) -> tuple[float, subprocess.CompletedProcess]:
    """Run snakemake (``prefix`` instead of the executable) with ``tree``'s code first on the
    path; its wall time and result."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([*(prefix or [str(SNAKEMAKE)]), *argv], capture_output=True,
                          text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc


def prepare(tree: Path, case: str, work: Path, patients: int) -> Path:
    """The case's work directory with its data stage done (split counts written)."""
    workdir = work / DATA[CASES[case][0]]
    if not (workdir / "results" / "data" / "split_counts.json").exists():
        run(tree, command(tree, case, workdir, patients, "results/data/split_counts.json"))
    return workdir


def job_counts(stdout: str) -> dict[str, int]:
    """Rule -> job count from the dry run's job stats table."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def dump(trees: list[Path], case: str, workdir: Path, patients: int, out: Path) -> bool:
    """Write every tree's job list of ``case``; True when they are all equal."""
    out.mkdir(parents=True, exist_ok=True)
    texts = []
    for i, tree in enumerate(trees):
        file = out / f"{i}-{tree.name}-{case}.json"
        run(tree, command(tree, case, workdir, patients, "-n"),
            [sys.executable, "-c", DUMP, str(file)])
        texts.append(file.read_text())
        print(f"{case}: {tree}: {len(json.loads(texts[-1]))} jobs -> {file}")
    return all(t == texts[0] for t in texts)


def main(argv: list[str] | None = None) -> int:
    """Print the dry-run wall time of each case and tree (median of the repeats)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", nargs="+", type=Path, default=[ROOT])
    ap.add_argument("--cases", nargs="+", choices=list(CASES),
                    default=["smoke", "paper", "paper3"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--work", type=Path, default=Path("/tmp/iman-dag-build"))
    ap.add_argument("--dump", type=Path, help="write and compare every tree's job list")
    args = ap.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    dirs = {c: prepare(trees[0], c, args.work, args.patients) for c in args.cases}
    if args.dump:
        same = [dump(trees, c, dirs[c], args.patients, args.dump) for c in args.cases]
        print("job lists identical across trees" if all(same) else "JOB LISTS DIFFER")
        return 0 if all(same) else 1
    print(f"{'case':<7} {'tree':<28} {'jobs':>6} {'train':>6} {'median s':>9} {'ratio':>6}"
          "  runs s")
    for case in args.cases:
        walls: dict[Path, list[float]] = {t: [] for t in trees}
        counts: dict[Path, dict[str, int]] = {}
        for _ in range(args.repeats):
            for tree in trees:  # interleaved: a busy machine slows every tree alike
                wall, proc = run(tree, command(tree, case, dirs[case], args.patients, "-n"))
                walls[tree].append(wall)
                counts[tree] = job_counts(proc.stdout)
        base = statistics.median(walls[trees[0]])
        for tree in trees:
            med = statistics.median(walls[tree])
            runs = " ".join(f"{w:.1f}" for w in walls[tree])
            print(f"{case:<7} {str(tree)[-28:]:<28} {counts[tree].get('total', 0):>6} "
                  f"{counts[tree].get('train', 0):>6} {med:>9.1f} {med / base:>6.2f}  {runs}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
