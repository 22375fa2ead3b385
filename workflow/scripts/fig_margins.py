"""Rule fig_margins: the 'X' pathway of one test case across IMAN's loops."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import margin_pathway_figure

sm = snakemake  # noqa: F821
run_logged(sm.log[0], margin_pathway_figure,
           experiment=sm.params.experiment,
           files=dict(sm.input.items()),
           cache_dir=Path(sm.input.cache),
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
