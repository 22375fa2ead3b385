"""The ``iman`` command: thin wrappers around library functions.

    iman config [--configfile F ...] [--config K=V ...]   print the resolved config (YAML)
    iman models [NAME ...] [--params]   list the methods, their packages (and parameters)
    iman phantom --out DIR          write the synthetic US-CEUS dataset (sheet layout)
    iman ingest --layout ... --root ... --out ...   validate + cache a dataset
    iman predict --results results --experiment NAME --sheet cases.csv --out DIR
    iman plan [--configfile F ...] [--config K=V ...]   fingerprint, fit check, suggestions
    iman estimate (--cost cost.csv | --rehearsal resources.csv) --configfile paper.yaml
                  [--epochs N]   device hours
    iman rehearse [--configfile F ...] [--config K=V ...]   every kind of job, a few steps
    iman weights list [--check]     pretrained files of the paper protocol, cache status
    iman weights fetch [METHOD ...] download into the cache, verify the checksum, record
    iman weights verify FILE --method M [--variant V] [--configfile F | --size N --frames T]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from iman.names import LAYOUT_NAMES

if TYPE_CHECKING:
    from iman.models.registry import MethodCard

__all__ = ["main"]


def _models(args: argparse.Namespace) -> int:
    """List the methods (in-tree, then plug-ins) with their source package; broken plug-ins
    after them (exit status 1 when there is one)."""
    from iman.models import all_entries, broken_plugins, get_entry, source_of

    entries = [get_entry(n) for n in args.names] if args.names else all_entries()
    print(f"{'name':<14} {'family':<9} {'modalities':<9} {'gates':<5} "
          f"{'paper M':>8} {'computed M':>10}  {'source':<28} variants")
    for e in entries:
        computed = f"{_paper_params_m(e):.3f}" if args.params else ""
        paper = f"{e.paper_params_m:.3f}" if e.paper_params_m else "-"
        src = source_of(e.name)
        print(f"{e.name:<14} {e.family:<9} {','.join(e.modalities):<9} "
              f"{'yes' if e.gates_skips else 'no':<5} {paper:>8} {computed:>10}  "
              f"{src.package + ' ' + src.version:<28} {','.join(e.variants)}")
    broken = broken_plugins()
    if broken:
        print("\nbroken plug-ins (not usable):")
        for b in broken:
            print(f"  {b.message()}")
    return 1 if broken else 0


def _paper_params_m(entry: MethodCard) -> float:
    """Millions of trainable parameters of the paper variant at its paper input."""
    from iman.models import build_model, count_parameters

    size = entry.paper_input.get("img_size", 224)
    chans = entry.paper_input.get("in_channels",
                                  {m: 1 for m in entry.consumed(entry.modalities[0])})
    return count_parameters(build_model(entry.name, dict(chans), size, "paper")) / 1e6


def _config(args: argparse.Namespace) -> int:
    from snakemake.cli import parse_config

    from iman.config import DEMO_CONFIG, dump_config, resolve_config

    try:
        overrides = parse_config(args.config or [])
    except ValueError as err:
        print(f"iman config: {err}", file=sys.stderr)
        return 2
    cfg = resolve_config(args.configfile or [DEMO_CONFIG], overrides)
    print(dump_config(cfg), end="")
    return 0


def _phantom(args: argparse.Namespace) -> int:
    from iman.data.phantom import generate

    sheet = generate(Path(args.out), n_patients=args.patients, seed=args.seed,
                     side_by_side=args.side_by_side)
    print(sheet)
    return 0


def _ingest(argv: list[str]) -> int:
    from iman.data.ingest import main_ingest

    return main_ingest(argv)


def _predict(args: argparse.Namespace) -> int:
    from iman.predict import predict_cases

    out = predict_cases(Path(args.results), args.experiment, Path(args.sheet), Path(args.out),
                        layout=args.layout)
    print(f"wrote predictions for {len(out)} cases to {args.out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from iman.config import ConfigError
    from iman.plan import run_plan

    try:
        text = run_plan(Path(args.directory), args.configfile or [], args.config or [])
    except (ConfigError, ValueError, RuntimeError) as err:
        print(f"iman plan: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def _estimate(args: argparse.Namespace) -> int:
    import pandas as pd
    from snakemake.cli import parse_config

    from iman.config import ConfigError, resolve_config
    from iman.experiments import all_table_nodes
    from iman.reporting.cost import estimate_from_rehearsal, estimate_headline, estimate_hours

    try:
        cfg = resolve_config(args.configfile, parse_config(args.config or []))
    except (ConfigError, ValueError) as err:
        print(f"iman estimate: {err}", file=sys.stderr)
        return 2
    nodes = all_table_nodes(cfg)
    if args.rehearsal:
        table = estimate_from_rehearsal(pd.read_csv(args.rehearsal), cfg["model"], nodes,
                                        args.epochs)
        epochs: float | str = args.epochs or f"max_epochs ({cfg['train']['max_epochs']})"
        group = "kind"
    else:
        epochs = args.epochs or cfg["train"]["max_epochs"]
        table = estimate_hours(pd.read_csv(args.cost), nodes, epochs)
        group = "group"
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\n" + estimate_headline(table, epochs, group))
    return 0


def _rehearse(args: argparse.Namespace) -> int:
    """Rehearse every kind of training job of the configured DAG; exit 1 on a failure."""
    import tempfile

    from snakemake.cli import parse_config

    from iman.config import DEMO_CONFIG, ConfigError, resolve_config
    from iman.experiments import all_table_nodes
    from iman.paths import Paths
    from iman.rehearsal import (
        RehearsalError,
        data_plan,
        rehearsal_jobs,
        rehearse,
        threads_default,
        write_resources,
    )

    try:
        cfg = resolve_config(args.configfile or [DEMO_CONFIG], parse_config(args.config or []))
    except (ConfigError, ValueError) as err:
        print(f"iman rehearse: {err}", file=sys.stderr)
        return 2
    paths = Paths(str(Path(args.directory) / cfg["results"]))
    jobs = rehearsal_jobs(cfg, all_table_nodes(cfg))
    with tempfile.TemporaryDirectory(prefix="iman-rehearsal-") as work:
        cases = args.cases or cfg["rehearsal"]["cases"]
        partial = Path(paths.rehearsal_resources).with_suffix(".partial.csv")
        df = rehearse(jobs, data_plan(cfg, paths, cases), Path(work), args.steps,
                      args.threads or threads_default(), args.batch_size, args.timeout,
                      args.only or (), partial=partial)
    partial.unlink(missing_ok=True)
    try:
        write_resources(df, Path(paths.rehearsal_resources), Path(paths.rehearsal_summary))
    except RehearsalError as err:
        print(f"measurements of the kinds that ran: {paths.rehearsal_resources}, "
              f"{paths.rehearsal_summary}", file=sys.stderr)
        print(f"iman rehearse: {err}", file=sys.stderr)
        return 1
    print(Path(paths.rehearsal_summary).read_text(), end="")
    return 0


def _weights(args: argparse.Namespace) -> int:
    from iman.training import weights as w

    try:
        if args.action == "list":
            return _weights_list(args.check)
        if args.action == "fetch":
            files = w.files_for(args.methods, every=args.all)
            for f, path, how in w.fetch(files, progress=not args.quiet):
                print(f"{how:<8} {path}  ({', '.join(f.models)})")
            return 0
    except w.WeightsError as err:
        print(f"iman weights: {err}", file=sys.stderr)
        return 2
    return _weights_verify(args)


def _weights_verify(args: argparse.Namespace) -> int:
    import pickle
    import zipfile

    from iman.models.blocks import UNREADABLE
    from iman.training import weights as w

    size, frames = args.size, args.frames
    if args.configfile:
        from snakemake.cli import parse_config

        from iman.config import ConfigError, resolve_config

        try:
            cfg = resolve_config(args.configfile, parse_config(args.config or []))
        except (ConfigError, ValueError) as err:
            print(f"iman weights verify: {err}", file=sys.stderr)
            return 2
        size, frames = size or cfg["data"]["size"], frames or cfg["frames"]["T"]
    path = Path(args.file)
    problem = w.file_problem(path)  # missing, empty, a web page, a damaged zip
    if problem:
        print(f"iman weights verify: {path} {problem}", file=sys.stderr)
        return 2
    try:
        reports = w.verify(path, args.method, args.variant, size, frames)
    except (*UNREADABLE, zipfile.BadZipFile, pickle.UnpicklingError, w.WeightsError) as err:
        print(f"iman weights verify: {args.file}: cannot load as {args.method} weights: "
              f"{err}", file=sys.stderr)
        return 2
    for report in reports:
        print(report.text(limit=20))
    if not all(r.ok for r in reports):
        print(f"iman weights verify: {args.file} is not a {args.method}/{args.variant} "
              "weight file", file=sys.stderr)
        return 1
    print(f"OK: {args.file} fits {args.method}/{args.variant}")
    return 0


def _weights_list(check: bool) -> int:
    from iman.training import weights as w

    directory = w.cache_dir()
    manifest = w.read_manifest(directory)
    print(f"weights cache: {directory}  (IMAN_WEIGHTS_DIR)\n")
    bad = 0
    for f in w.catalog().values():
        source, path = w.cached_source(f, directory)
        status = "missing"
        if path.is_file():
            problem = (w.check_file(f, path, manifest) if check
                       else w.file_problem(path, source, manifest))
            status = ("broken: " + problem.removeprefix(f"{path} ")) if problem else (
                "verified" if check else "cached")
            if not problem and path.name in manifest:
                origin = w.record_origin(manifest[path.name])
                status += ", placed by hand" if origin == "placed by hand" else ""
            bad += bool(problem)
        rec = manifest.get(path.name, {}).get("sha256")
        print(f"{f.id}  [{status}]\n  for:    {', '.join(f.models)}\n"
              f"  origin: {f.origin}\n  norm:   {f.norm.text()}\n  fills:  {f.fills}")
        for i, s in enumerate(f.sources, 1):
            here = " (in the cache)" if (directory / s.filename).is_file() else ""
            digest = {"full": f"{s.sha256} (full, published)",
                      "prefix": f"{s.sha256}... (prefix from the file name, checked)",
                      "unknown": "unknown: none published; recorded at the first fetch and "
                      "checked from then on"}[s.digest_kind]
            size = f"~{s.size_mb:g} MB" if s.size_mb else "size unknown"
            print(f"  source {i}: {s.filename}{here}\n    url:    {s.url}\n"
                  f"    layout: {s.layout}, {size}\n    sha256: {digest}")
            record = manifest.get(s.filename, {})
            if (directory / s.filename).is_file() and record.get("sha256"):
                origin = w.record_origin(record)
                how = (f"fetched from {record['url']}" if origin == "fetched" else
                       "placed by hand: no source URL")
                print(f"    recorded: {record['sha256']} ({how})")
            if s.note:
                print(f"    note:   {s.note}")
        if rec is None and path.is_file():
            print("  (not recorded in weights.json: placed by hand; `iman weights fetch` "
                  "records it)")
        print()
    print("Trained from scratch (no ImageNet file): every other method; "
          "model.weights can name a whole-model state dict for any method.")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``iman`` console script: a :class:`~iman.errors.UserError` from
    any subcommand is printed as its message alone (exit status 2); a bug keeps its traceback."""
    from iman.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["ingest"]:
            return _ingest(argv[1:])
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"iman {argv[0]}: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    """The ``iman`` argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(prog="iman", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="print the resolved config as the workflow would run it",
                       description="Schema defaults (the paper protocol), then each "
                       "--configfile in order (config/config.yaml, the embedded demo, when "
                       "none is given), then --config overrides; as Snakemake's options.")
    c.add_argument("--configfile", "--configfiles", nargs="+", action="extend", metavar="FILE",
                   help="config file(s), in order")
    c.add_argument("--config", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="overrides, Snakemake syntax (e.g. 'train={\"lr\": 0.005}')")
    m = sub.add_parser("models", help="list the methods (in-tree and plug-ins)")
    m.add_argument("names", nargs="*", metavar="NAME", help="only these methods")
    m.add_argument("--params", action="store_true", help="build each paper config and count")
    p = sub.add_parser("phantom", help="write the synthetic dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--patients", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--side-by-side", action="store_true")
    sub.add_parser("ingest", help="validate and cache a dataset (see iman ingest -h)")
    r = sub.add_parser("predict", help="apply a trained IMAN experiment to new cases")
    r.add_argument("--results", default="results", help="the workflow's results folder")
    r.add_argument("--experiment", required=True, help="experiment name (results/experiments/)")
    r.add_argument("--sheet", required=True, help="case sheet (or iman_public root) of new cases")
    r.add_argument("--layout", default="sheet", choices=list(LAYOUT_NAMES))
    r.add_argument("--out", required=True)
    pl = sub.add_parser("plan", help="the dataset's fingerprint, the config checked against "
                        "it, suggested settings (YAML to paste; nothing is applied)",
                        description="Runs the workflow up to results/data/fingerprint.json "
                        "(ingest if needed; nothing trains) and the split, then prints.")
    pl.add_argument("--configfile", "--configfiles", nargs="+", action="extend",
                    metavar="FILE", help="config file(s), in order (default config/config.yaml)")
    pl.add_argument("--config", nargs="+", action="extend", metavar="KEY=VALUE")
    pl.add_argument("--directory", default=".", help="the project directory (default: here)")
    e = sub.add_parser("estimate", help="device hours of a planned run from a reduced run's "
                       "cost.csv or a rehearsal's resources.csv",
                       description="--cost: per method, variant and modality, seconds per "
                       "epoch and per-job overhead of the reduced run; --rehearsal: per kind "
                       "of job, the rehearsal's predicted job time. Times the planned run's "
                       "training jobs at --epochs epochs (default its max_epochs: an upper "
                       "bound; early stopping ends most jobs sooner). Jobs without a measured "
                       "rate are listed as not estimated.")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--cost", help="results/tables/cost.csv of a reduced run")
    source.add_argument("--rehearsal", help="results/rehearsal/resources.csv of a rehearsal "
                        "(iman rehearse): predicted time per kind of job")
    e.add_argument("--configfile", nargs="+", required=True, metavar="FILE",
                   help="config file(s) of the planned run")
    e.add_argument("--config", nargs="+", action="extend", metavar="KEY=VALUE")
    e.add_argument("--epochs", type=float, help="expected epochs per job")
    rh = sub.add_parser("rehearse", help="run every kind of training job for a few steps at "
                        "the configured geometry; write results/rehearsal/resources.csv",
                        description="One representative per kind (method, variant, modality, "
                        "T, margin source, first/warm loop, pretrained start): a few optimiser "
                        "steps, one validation batch, one case evaluated at its original size, "
                        "the MMG. On the prepared data (results/data), else a small phantom "
                        "of the configured size. Exit status 1 when a kind fails.")
    rh.add_argument("--configfile", "--configfiles", nargs="+", action="extend",
                    metavar="FILE", help="config file(s), in order (default config/config.yaml)")
    rh.add_argument("--config", nargs="+", action="extend", metavar="KEY=VALUE")
    rh.add_argument("--directory", default=".", help="the project directory (default: here)")
    rh.add_argument("--steps", type=int, default=2, help="timed optimiser steps per kind")
    rh.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    rh.add_argument("--batch-size", type=int, help="measure at this batch size instead of the "
                    "configured one (times are scaled back linearly; for a CPU rehearsal)")
    rh.add_argument("--cases", type=int, help="cases of the planned run, to size its epochs "
                    "before the data are prepared (default: rehearsal.cases, else the data's)")
    rh.add_argument("--timeout", type=float, help="seconds per kind before it counts as failed")
    rh.add_argument("--only", nargs="+", metavar="PREFIX", help="only kinds whose key starts "
                    "with one of these (e.g. nunet.paper, transunet.paper/ceus)")
    w = sub.add_parser("weights", help="pretrained weight files: list, fetch, verify")
    wsub = w.add_subparsers(dest="action", required=True)
    wl = wsub.add_parser("list", help="what the paper protocol expects; cache status")
    wl.add_argument("--check", action="store_true", help="hash every cached file")
    wf = wsub.add_parser("fetch", help="download into the cache ($IMAN_WEIGHTS_DIR), verified")
    wf.add_argument("methods", nargs="*", metavar="METHOD[/VARIANT]",
                    help="default: the files of every paper variant")
    wf.add_argument("--all", action="store_true", help="every file of the catalogue")
    wf.add_argument("--quiet", action="store_true", help="no progress bar")
    wv = wsub.add_parser("verify", help="load FILE into a method's model(s) and report keys",
                         description="Builds the method's US and (with --frames or a config) "
                         "CEUS branch at the run's size, RGB per grey channel, and loads FILE.")
    wv.add_argument("file")
    wv.add_argument("--method", required=True)
    wv.add_argument("--variant", default="paper")
    wv.add_argument("--size", type=int, help="input size (default: the config's, else the "
                    "method's paper input)")
    wv.add_argument("--frames", type=int, help="CEUS frames T (3T channels; default: config)")
    wv.add_argument("--configfile", nargs="+", action="extend", metavar="FILE",
                    help="take size and T from this run config (e.g. config/paper.yaml)")
    wv.add_argument("--config", nargs="+", action="extend", metavar="KEY=VALUE")
    return parser


COMMANDS = {"config": _config, "models": _models, "phantom": _phantom, "predict": _predict,
            "weights": _weights, "estimate": _estimate, "plan": _plan,
            "rehearse": _rehearse}
"""Subcommand name -> its function (``ingest`` parses its own arguments)."""


if __name__ == "__main__":
    raise SystemExit(main())
