"""Rule mismatched_margins: a node's margins, each case given another patient's."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_mismatched_margins

sm = snakemake  # noqa: F821
run_logged(sm.log[0], make_mismatched_margins,
           margins_file=Path(sm.input.margins),
           manifest_file=Path(sm.input.manifest),
           splits_file=Path(sm.input.splits),
           fold=sm.params.fold,
           seed=sm.params.seed,
           out_file=Path(sm.output.margins),
           donors_file=Path(sm.output.donors))
