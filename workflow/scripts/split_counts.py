"""Checkpoint split_counts: cases and patients per split subset of every fold -> JSON."""

from pathlib import Path

from _log import run_logged

from iman.data.fingerprint import write_split_counts

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_split_counts, Path(sm.input.fingerprint), Path(sm.input.splits),
           Path(sm.output[0]))
