"""Rule record_run: the resolved config and the run's provenance (code, packages, host)."""

from pathlib import Path

from _log import run_logged

from iman.provenance import record_run

sm = snakemake  # noqa: F821
run_logged(sm.log[0], record_run,
           config=sm.params.config,
           config_out=Path(sm.output.config),
           provenance_out=Path(sm.output.provenance))
