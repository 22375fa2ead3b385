"""Rule mismatched_margins: a node's margins, each case given another patient's."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_mismatched_margins

sm = snakemake  # noqa: F821
run_logged(sm.log[0], make_mismatched_margins, Path(sm.input.margins), Path(sm.input.manifest),
           Path(sm.input.splits), sm.params.fold, sm.params.seed, Path(sm.output.margins),
           Path(sm.output.donors))
