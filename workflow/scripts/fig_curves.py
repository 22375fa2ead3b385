"""Rule fig_curves: loss and validation DSC per epoch, loops concatenated."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import training_curves

sm = snakemake  # noqa: F821
run_logged(sm.log[0], training_curves, dict(sm.params.panels),
           Path(sm.output.png),
           Path(sm.output.pdf))
