"""Rule record_run: the resolved config and the run's provenance (code, packages, host)."""

from pathlib import Path

from _log import run_logged

from iman.provenance import record_run

sm = snakemake  # noqa: F821
run_logged(sm.log[0], record_run, sm.params.config, Path(sm.output.config),
           Path(sm.output.provenance))
