"""Checkpoint split_counts: cases and patients per split subset of every fold -> JSON."""

from pathlib import Path

from _log import run_logged

from iman.data.fingerprint import write_split_counts

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_split_counts,
           fingerprint_file=Path(sm.input.fingerprint),
           splits_file=Path(sm.input.splits),
           out=Path(sm.output[0]))
