"""Rule split: patient-grouped train/val/test split(s)."""

from pathlib import Path

from _log import run_logged

from iman.data.split import split_cases

sm = snakemake  # noqa: F821
run_logged(sm.log[0], split_cases,
           manifest=Path(sm.input.manifest),
           out=Path(sm.output[0]),
           ratios=sm.params.ratios,
           seed=sm.params.seed,
           folds=sm.params.folds,
           use_source_split=sm.params.use_source_split,
           sizes=sm.params.sizes)
