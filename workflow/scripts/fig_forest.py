"""Rule fig_forest: paired DSC differences with bootstrap CIs, one panel per table."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import forest_plot

sm = snakemake  # noqa: F821
run_logged(sm.log[0], forest_plot, Path(sm.input.stats), Path(sm.output.png),
           Path(sm.output.pdf))
