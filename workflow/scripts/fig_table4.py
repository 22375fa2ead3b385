"""Rule fig_table4: Table IV as kernel x filter heatmaps, paper values beside."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import table4_heatmap

sm = snakemake  # noqa: F821
run_logged(sm.log[0], table4_heatmap,
           table4_csv=Path(sm.input.table),
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
