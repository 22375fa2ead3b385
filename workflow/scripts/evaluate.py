"""Rule evaluate: per-case metrics (both families) of one node's val and test cases."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.evaluate import evaluate_node

sm = snakemake  # noqa: F821
run_logged(sm.log[0], evaluate_node, Path(sm.input.pred), Path(sm.input.cache),
           Path(sm.input.splits), sm.wildcards.modality, sm.params.fold, Path(sm.output[0]))
