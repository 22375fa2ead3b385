"""Rehearsal (workflow glue: it runs the training, margins and evaluation stages): one
representative of every kind of training job (:mod:`iman.training.kinds`)
runs a few steps at the configured geometry, and its time and memory are recorded.

Each kind runs in its own forked process (its peak RSS is its own; a crash or an
out-of-memory kill fails that kind only): a few optimiser steps at the configured batch
size, AMP, pretrained start and injection, the warm start from a checkpoint for warm loops,
one validation batch, the prediction and metrics of one case at its original size, and the
MMG for kinds whose predictions make margins. Every failure is collected and reported at
once, naming the kind and the job it stands for. The rehearsal uses the configured data
when they are prepared (``results/data``), otherwise a small phantom of the configured size.
"""

from __future__ import annotations

import math
import os
import resource
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from iman.errors import UserError
from iman.experiments import Node, margin_source, parse_name
from iman.training.kinds import Kind, plan_kinds
from iman.training.resources import job_seconds

__all__ = ["DataPlan", "KindJob", "RehearsalError", "data_plan",
           "rehearsal_jobs", "rehearse", "summary_text", "threads_default", "write_resources"]

PHANTOM_PATIENTS = 6
"""Patients of the phantom a rehearsal uses when the configured data are not prepared."""


class RehearsalError(UserError, RuntimeError):
    """At least one kind failed; the message lists every failure with its job."""


@dataclass(frozen=True)
class KindJob:
    """What the rehearsal runs for one kind: its representative node and that node's
    protocol (the train rule's params), frames, margins in and out, and planned jobs."""

    kind: str
    run: str
    modality: str
    loop: int
    protocol: dict[str, Any]
    frames: tuple[int, int, str] | None
    margins_in: dict[str, Any] | None  # {"source": kind, "modality", "kernel", "filter"}
    margins_out: tuple[int, str] | None
    threshold: float
    planned_jobs: int


@dataclass(frozen=True)
class DataPlan:
    """Where the rehearsal's cases come from and how the planned jobs' epochs are sized."""

    root: str  # a results root (iman.paths.Paths): data/manifest.csv, data/cache, ...
    size: int
    phantom: dict[str, Any] = field(default_factory=dict)
    min_frames: int = 1
    train_cases: int | None = None  # training cases per job of the planned run (None: data)
    val_cases: int | None = None
    eval_cases: int | None = None


def rehearsal_jobs(cfg: Mapping[str, Any], nodes: Iterable[Node]) -> list[KindJob]:
    """One :class:`KindJob` per kind of ``nodes`` (DAG order of first appearance)."""
    from iman.training.node import node_protocol

    plan = plan_kinds(cfg["model"], nodes)
    out_settings: dict[Node, tuple[int, str]] = {}  # margin producers -> the MMG they feed
    for members in plan.nodes.values():
        for n in members:
            src = margin_source(n)
            if src is not None and src.node is not None:
                out_settings.setdefault(src.node, src.setting)
    jobs = []
    for kind, members in plan.nodes.items():
        rep = plan.representative(kind)
        spec, source = parse_name(rep.run), margin_source(rep)
        produced = next((out_settings[n] for n in members if n in out_settings), None)
        jobs.append(KindJob(
            kind.key, rep.run, rep.modality, rep.loop, node_protocol(dict(cfg), rep),
            None if spec.T is None else (spec.T, spec.step, spec.strategy),
            None if source is None else {"source": kind.margins, "modality": source.modality,
                                         "kernel": source.setting[0],
                                         "filter": source.setting[1]},
            produced, float(cfg["mmg"]["threshold"]), len(members)))
    return jobs


# ---- data ----------------------------------------------------------------------------------


def _train_fraction(split_cfg: Mapping[str, Any]) -> tuple[float, float]:
    """Shares of the cases a job trains and validates on under the configured split."""
    k = split_cfg["folds"]
    if k >= 2:
        return (k - 2) / k, 1 / k
    ratios = split_cfg["ratios"]
    return ratios[0] / sum(ratios), ratios[1] / sum(ratios)


def data_plan(cfg: Mapping[str, Any], paths: Any, cases: int | None = None) -> DataPlan:
    """The rehearsal's data settings: the run's prepared files (``paths``), the phantom
    settings and, with ``cases``, the planned run's case count (else the prepared data's)."""
    train = val = None
    if cases:
        share = _train_fraction(cfg["split"])
        train, val = max(1, round(cases * share[0])), max(1, round(cases * share[1]))
    return DataPlan(paths.root, cfg["data"]["size"], dict(cfg["dataset"]["phantom"]),
                    cfg["dataset"]["min_frames"], train, val, cases)


def _paths(data: DataPlan) -> Any:
    from iman.paths import Paths

    return Paths(data.root)


def _prepared(data: DataPlan, jobs: Sequence[KindJob]) -> bool:
    p = _paths(data)
    frames = [p.frames(*j.frames) for j in jobs if j.frames]
    return all(Path(f).exists() for f in (p.manifest, p.cache_dir, p.splits, *frames))


def _phantom_data(data: DataPlan, jobs: Sequence[KindJob], work: Path) -> DataPlan:
    """A small phantom of the configured size, ingested, split and framed under ``work``."""
    from iman.data.frames import frame_picks
    from iman.data.ingest import ingest
    from iman.data.phantom import generate
    from iman.data.split import split_cases

    prepared = replace(data, root=str(work))
    p = _paths(prepared)
    needed = max([data.min_frames] + [1 + (j.frames[0] - 1) * j.frames[1]
                                      for j in jobs if j.frames])
    settings = {**data.phantom, "n_patients": PHANTOM_PATIENTS,
                "n_frames": max(needed + 2, 9)}  # only the frames a job picks from
    sheet = generate(Path(p.phantom_sheet).parent, **settings)
    ingest("sheet", sheet, Path(p.manifest).parent, data.size, min_frames=data.min_frames)
    split_cases(Path(p.manifest), Path(p.splits), (0.5, 0.25, 0.25), 0, 1, False)
    for T, step, strategy in sorted({j.frames for j in jobs if j.frames}):
        out = Path(p.frames(T, step, strategy))
        out.parent.mkdir(parents=True, exist_ok=True)
        frame_picks(Path(p.manifest), Path(p.cache_dir), out, strategy, T, step)
    return prepared


# ---- one kind ------------------------------------------------------------------------------


def _tile(arrays: Any, n: int) -> Any:
    """The first ``n`` cases of ``arrays``, repeating cases when there are fewer."""
    import torch

    idx = torch.arange(n) % len(arrays.case_ids)
    margin = arrays.margin[idx] if arrays.margin is not None else None
    ids = [arrays.case_ids[i] for i in idx.tolist()]
    return replace(arrays, case_ids=ids, x=arrays.x[idx], y=arrays.y[idx], margin=margin)


def _margins_for(job: KindJob, data: DataPlan, cases: list[str]) -> dict[str, Any] | None:
    """Margins as the kind's job reads them: the MMG on the source modality's masks (a
    stand-in for the source node's predictions), another patient's for ``mismatched``."""
    if job.margins_in is None:
        return None
    import numpy as np

    from iman.margins.mmg import make_margins, original_sizes
    from iman.paths import case_file

    m, p = job.margins_in, _paths(data)
    manifest = pd.read_csv(p.manifest, dtype={"case_id": str})
    masks = {}
    for case in cases:
        with np.load(case_file(p.cache_dir, case)) as c:
            masks[case] = c[f"{m['modality']}_mask"].astype(np.float32)
    margins = make_margins(masks, original_sizes(manifest, m["modality"]), m["kernel"],
                           m["filter"], threshold=job.threshold)
    if m["source"] == "mismatched":
        values = list(margins.values())
        margins = dict(zip(margins, values[1:] + values[:1]))
    return margins


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _measure(job: KindJob, data: DataPlan, steps: int, threads: int, work: Path,
             batch_size: int | None) -> dict[str, Any]:
    """Run one kind (in the calling process) and return its measurements."""
    import numpy as np
    import torch

    from iman.data.dataset import load_cases
    from iman.data.split import read_split
    from iman.evaluation.metrics import case_metrics
    from iman.models import get_entry
    from iman.models.registry import count_parameters
    from iman.paths import case_file
    from iman.training.checkpoint import atomic_save
    from iman.training.node import train_config
    from iman.training.trainer import CheckpointFiles, Trainer, predict_probs

    node = Node(job.run, job.modality, job.loop)
    protocol = dict(job.protocol)
    if batch_size:
        protocol["batch_size"] = batch_size
    tcfg = train_config(protocol, node, threads)
    bs = tcfg.batch_size
    p = _paths(data)
    split = read_split(Path(p.splits), 0)
    cases = sorted(split["train"] + split["val"] + split["test"])
    inputs = get_entry(tcfg.model).consumed(job.modality)
    frames = Path(p.frames(*job.frames)) if job.frames else None
    margins = _margins_for(job, data, cases)
    load = lambda ids: load_cases(Path(p.cache_dir), ids, inputs, job.modality,  # noqa: E731
                                  frames, margins, tcfg.norm)
    train, val = load(split["train"]), load(split["val"] or split["train"])
    init = None
    if job.loop >= 1:  # warm start from a checkpoint written as loop l-1's trainer writes it
        init = work / "init.pt"
        parent = Trainer(tcfg, _tile(train, 1), _tile(val, 1),
                         CheckpointFiles.in_dir(work / "parent"))
        atomic_save(parent._state(), init)
        del parent
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(tcfg, _tile(train, bs), _tile(val, bs),
                      CheckpointFiles.in_dir(work), init)
    rss_model = _rss_mb()
    if trainer.device == "cuda":  # warm-up step (allocator, cuDNN autotune), not timed
        trainer._train_epoch(0)
    trainer.train_data = _tile(train, bs * steps)
    t0 = time.perf_counter()
    trainer._train_epoch(0)
    s_step = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    trainer._validate()
    s_val = time.perf_counter() - t0
    case = (split["test"] or split["val"] or split["train"])[0]
    t0 = time.perf_counter()
    prob = predict_probs(trainer.model, load([case]), trainer.device, 1, tcfg.amp)[0]
    with np.load(case_file(p.cache_dir, case)) as c:
        case_metrics(prob, c[f"{job.modality}_mask"], c[f"{job.modality}_mask_orig"],
                     float(c[f"{job.modality}_spacing_mm"]))
    s_eval = time.perf_counter() - t0
    s_margins = None
    if job.margins_out is not None:
        from iman.margins.mmg import make_margins, original_sizes

        sizes = original_sizes(pd.read_csv(p.manifest, dtype={"case_id": str}),
                               job.modality)
        t0 = time.perf_counter()
        make_margins({case: prob}, sizes, job.margins_out[0], job.margins_out[1],
                     threshold=job.threshold)
        s_margins = time.perf_counter() - t0
    cuda = trainer.device == "cuda"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "device": (f"cuda:{torch.cuda.get_device_name()}" if cuda else "cpu"),
        "threads": threads, "params": count_parameters(trainer.model), "batch_size": bs,
        "steps": steps, "s_per_step": s_step, "s_val_batch": s_val, "s_per_eval_case": s_eval,
        "s_margins_per_case": s_margins, "rss_model_mb": rss_model,
        "rss_peak_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
        "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "cuda_max_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
    }


def _child(conn: Any, *args: Any) -> None:
    """Forked process: measure one kind, send the result or the error."""
    try:
        conn.send({"status": "ok", **_measure(*args)})
    except BaseException as err:  # any failure of the job is the kind's result
        last = traceback.extract_tb(err.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        conn.send({"status": "failed", "error": f"{type(err).__name__}: {err} (at {where})"})
    finally:
        conn.close()


def _preload(jobs: Sequence[KindJob]) -> None:
    """Import what every kind's process needs once, before forking (each child then starts
    at once, sharing the parent's pages, as a job that has imported them)."""
    import iman.evaluation.metrics
    import iman.margins.mmg
    import iman.training.trainer  # noqa: F401  (torch, the data loading, the registry)
    from iman.models import get_entry

    for method in {j.protocol["model"] for j in jobs}:
        try:
            get_entry(method).constructor()
        except Exception:  # a broken method fails in its own kind's process
            continue


def _run_kind(job: KindJob, data: DataPlan, steps: int, threads: int, work: Path,
              batch_size: int | None, timeout: float | None) -> dict[str, Any]:
    """One kind in a forked process; a process that dies is a failure saying how."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    work.mkdir(parents=True, exist_ok=True)
    proc = ctx.Process(target=_child, args=(child, job, data, steps, threads, work,
                                            batch_size))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    result = parent.recv() if parent.poll(timeout) else None
    proc.join(5 if result is not None else 0.1)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result is None:
        why = (f"did not finish within {timeout:.0f} s" if proc.exitcode in (None, -9)
               and timeout else f"the process died (exit code {proc.exitcode}"
               + ("; killed: most likely out of memory)" if proc.exitcode == -9 else ")"))
        result = {"status": "failed", "error": why}
    return {**result, "wall_s": time.perf_counter() - t0}


# ---- the whole rehearsal -------------------------------------------------------------------


def _epoch_sizes(data: DataPlan) -> tuple[int, int, int]:
    """(train, val, evaluated) cases per planned job: the planned numbers, else the data's."""
    from iman.data.split import read_split

    split = read_split(Path(_paths(data).splits), 0)
    counts = (len(split["train"]), len(split["val"]),
              len(split["train"]) + len(split["val"]) + len(split["test"]))
    return (data.train_cases or counts[0], data.val_cases or counts[1],
            data.eval_cases or counts[2])


def rehearse(jobs: Sequence[KindJob], data: DataPlan, work: Path, steps: int = 2,
             threads: int = 1, batch_size: int | None = None, timeout: float | None = None,
             only: Sequence[str] = (), progress: bool = True,
             partial: Path | None = None) -> pd.DataFrame:
    """Rehearse every kind of ``jobs`` (or those whose key starts with one of ``only``); one
    row per kind, failures included (``status``, ``error``). ``partial``: rewritten after
    every kind with the rows so far (a rehearsal stopped half-way keeps its figures)."""
    jobs = [j for j in jobs if not only or j.kind.startswith(tuple(only))]
    source = "configured data" if _prepared(data, jobs) else "phantom"
    if source == "phantom":
        data = _phantom_data(data, jobs, work / "phantom")
    train, val, evaluated = _epoch_sizes(data)
    sized_on = "planned cases" if data.train_cases else source
    _preload(jobs)
    rows = []
    for i, job in enumerate(jobs):
        if progress:
            print(f"[{i + 1}/{len(jobs)}] {job.kind}", flush=True)
        result = _run_kind(job, data, steps, threads, work / f"kind{i}", batch_size, timeout)
        bs = result.get("batch_size") or batch_size or job.protocol["batch_size"]
        conf_bs = job.protocol["batch_size"]
        rows.append({
            "kind": job.kind, **asdict(Kind.from_key(job.kind)),
            "job": f"{job.run}/{job.modality}/loop{job.loop}", "data": source,
            "size": job.protocol["img_size"], "configured_batch_size": conf_bs,
            "amp": job.protocol["amp"], "injection": job.protocol["injection"],
            "planned_jobs": job.planned_jobs, "max_epochs": job.protocol["max_epochs"],
            "sized_on": sized_on, "train_cases": train,
            "steps_per_epoch": math.ceil(train / conf_bs),
            "val_batches": math.ceil(val / conf_bs), "eval_cases": evaluated,
            "batch_size": bs, **result})
        if progress and result["status"] != "ok":
            print(f"    FAILED: {result['error']}", flush=True)
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
            _with_predictions(pd.DataFrame(rows)).to_csv(partial, index=False)
    return _with_predictions(pd.DataFrame(rows))


def _with_predictions(df: pd.DataFrame) -> pd.DataFrame:
    """Add the predicted hours per job and per kind at ``max_epochs``."""
    ok = df["status"] == "ok"
    hours = [job_seconds(r, r["max_epochs"]) / 3600 if good else float("nan")
             for good, (_, r) in zip(ok, df.iterrows())]
    return df.assign(job_hours=hours, kind_hours=df["planned_jobs"] * pd.Series(hours))


def summary_text(df: pd.DataFrame) -> str:
    """A short human summary: data, per kind time and memory, predicted hours, failures."""
    ok = df[df["status"] == "ok"]
    lines = [f"Rehearsal of {len(df)} kinds of training job ({int(df['planned_jobs'].sum())} "
             f"planned jobs) on {df['data'].iloc[0]}, {df['size'].iloc[0]} px; "
             f"{df['train_cases'].iloc[0]} training cases per job -> "
             f"{df['steps_per_epoch'].iloc[0]} steps per epoch at batch "
             f"{df['configured_batch_size'].iloc[0]}."]
    if df["sized_on"].iloc[0] == "phantom":
        lines.append("Epochs are sized on the rehearsal's phantom split: set rehearsal.cases "
                     "(or --cases) to the planned run's case count for its wall times.")
    lines.append("")
    for _, r in df.iterrows():
        if r["status"] != "ok":
            lines.append(f"FAILED {r['kind']} (job {r['job']}): {r['error']}")
            continue
        lines.append(f"{r['kind']:<48} {r['s_per_step']:7.2f} s/step (batch {r['batch_size']})"
                     f" {r['rss_peak_mb']:7.0f} MB RSS  {r['params'] / 1e6:6.1f} M params  "
                     f"{r['planned_jobs']:4d} jobs x {r['job_hours']:.2f} h at "
                     f"{r['max_epochs']} epochs")
    device = ok["device"].iloc[0] if len(ok) else "-"
    total = (f"predicted device hours at max_epochs: {ok['kind_hours'].sum():.1f} over "
             f"{int(ok['planned_jobs'].sum())} jobs on {device}")
    failed = df[df["status"] != "ok"]
    if len(failed):
        total += (f"; {len(failed)} kinds failed: {int(failed['planned_jobs'].sum())} jobs "
                  "not estimated")
    lines += ["", total]
    return "\n".join(lines) + "\n"


def write_resources(df: pd.DataFrame, out_csv: Path, out_summary: Path) -> None:
    """Write ``resources.csv`` and the summary; raise :class:`RehearsalError` listing every
    failed kind after both are written."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    text = summary_text(df)
    out_summary.write_text(text)
    failed = df[df["status"] != "ok"]
    if len(failed):
        raise RehearsalError(
            f"{len(failed)} of {len(df)} kinds of training job failed in the rehearsal "
            "(each would fail in every job of its kind):\n"
            + "\n".join(f"  - {r['kind']} (method {r['method']}, variant {r['variant']}, "
                        f"{r['modality']}; stands for job {r['job']} and "
                        f"{r['planned_jobs'] - 1} more): {r['error']}"
                        for _, r in failed.iterrows()))


def threads_default() -> int:
    """Threads a CPU rehearsal uses by default: every core of the machine."""
    return os.cpu_count() or 1
