"""The ``iman`` command: thin wrappers around library functions.

    iman config [--configfile F ...] [--config K=V ...]   print the resolved config (YAML)
    iman models [--params]          list registered methods (paper parameter counts)
    iman phantom --out DIR          write the synthetic US-CEUS dataset (sheet layout)
    iman ingest --layout ... --root ... --out ...   validate + cache a dataset
    iman predict --results results --experiment NAME --sheet cases.csv --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _models(args: argparse.Namespace) -> int:
    from iman.models import all_entries, build_model, count_parameters

    print(f"{'name':<10} {'family':<9} {'modalities':<9} {'gates':<5} "
          f"{'paper M':>8} {'computed M':>10}  variants")
    for e in all_entries():
        computed = ""
        if args.params:
            size = e.paper_input.get("img_size", 224)
            chans = e.paper_input.get("in_channels", {m: 1 for m in e.consumed("us")})
            computed = f"{count_parameters(build_model(e.name, chans, size, 'paper')) / 1e6:.3f}"
        paper = f"{e.paper_params_m:.3f}" if e.paper_params_m else "-"
        print(f"{e.name:<10} {e.family:<9} {','.join(e.modalities):<9} "
              f"{'yes' if e.gates_skips else 'no':<5} {paper:>8} {computed:>10}  "
              f"{','.join(e.variants)}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from snakemake.cli import parse_config

    from iman.config import DEMO_CONFIG, ConfigError, dump_config, resolve_config

    try:
        overrides = parse_config(args.config or [])
    except ValueError as err:
        print(f"iman config: {err}", file=sys.stderr)
        return 2
    try:
        cfg = resolve_config(args.configfile or [DEMO_CONFIG], overrides)
    except ConfigError as err:
        print(f"iman config: {err}", file=sys.stderr)
        return 2
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
    from iman.predict import PredictError, predict_cases

    try:
        out = predict_cases(Path(args.results), args.experiment, Path(args.sheet),
                            Path(args.out), layout=args.layout)
    except PredictError as err:
        print(f"iman predict: {err}", file=sys.stderr)
        return 2
    print(f"wrote predictions for {len(out)} cases to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``iman`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ingest"]:
        return _ingest(argv[1:])
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
    m = sub.add_parser("models", help="list registered models")
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
    r.add_argument("--layout", default="sheet", choices=["sheet", "iman_public"])
    r.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    commands = {"config": _config, "models": _models, "phantom": _phantom, "predict": _predict}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
