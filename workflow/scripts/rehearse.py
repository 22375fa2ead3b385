"""Rule rehearse: every kind of training job for a few steps; resources.csv + summary."""

import tempfile
from pathlib import Path

from _log import run_logged

from iman.rehearsal import rehearse, write_resources

sm = snakemake  # noqa: F821


def _rehearse() -> None:
    with tempfile.TemporaryDirectory(prefix="iman-rehearsal-") as work:
        df = rehearse(sm.params.jobs, sm.params.data, Path(work), threads=sm.threads)
    write_resources(df, Path(sm.output.resources), Path(sm.output.summary))


run_logged(sm.log[0], _rehearse)
