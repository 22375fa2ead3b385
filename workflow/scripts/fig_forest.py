"""Rule fig_forest: paired DSC differences with bootstrap CIs, one panel per table."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import forest_plot

sm = snakemake  # noqa: F821
run_logged(sm.log[0], forest_plot,
           stats_csv=Path(sm.input.stats),
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
