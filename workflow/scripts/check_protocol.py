"""Rule check_protocol: the config against the fingerprint, written for the record and the
report (the check that stops a run before training happens at DAG time, docs/data.md)."""

from pathlib import Path

from _log import run_logged

from iman.data.protocol import write_protocol_check

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_protocol_check,
           fingerprint_file=Path(sm.input.fingerprint),
           counts_file=Path(sm.input.split_counts),
           settings=sm.params.settings,
           out=Path(sm.output[0]))
