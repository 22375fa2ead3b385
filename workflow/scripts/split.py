"""Rule split: patient-grouped train/val/test split(s)."""

from pathlib import Path

from _log import run_logged

from iman.data.split import split_cases

sm = snakemake  # noqa: F821
run_logged(sm.log[0], split_cases, Path(sm.input.manifest), Path(sm.output[0]),
           sm.params.ratios, sm.params.seed, sm.params.folds, sm.params.use_source_split,
           sm.params.sizes)
