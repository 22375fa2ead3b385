"""Rule fig_curves: loss and validation DSC per epoch, loops concatenated."""

from pathlib import Path

from _log import redirect

from iman.figures import training_curves

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
training_curves(dict(sm.params.panels), Path(sm.output.png).with_suffix(""))
