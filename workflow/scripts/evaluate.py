"""Rule evaluate: per-case metrics (both families) of one node's val and test cases."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.evaluate import evaluate_node

sm = snakemake  # noqa: F821
run_logged(sm.log[0], evaluate_node,
           pred_file=Path(sm.input.pred),
           cache_dir=Path(sm.input.cache),
           splits_file=Path(sm.input.splits),
           modality=sm.wildcards.modality,
           fold=sm.params.fold,
           out_csv=Path(sm.output[0]))
