"""Rule fig_curves: loss and validation DSC per epoch, loops concatenated."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import training_curves

sm = snakemake  # noqa: F821
run_logged(sm.log[0], training_curves,
           histories=dict(sm.params.panels),
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
