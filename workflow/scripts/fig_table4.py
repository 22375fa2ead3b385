"""Rule fig_table4: Table IV as kernel x filter heatmaps, paper values beside."""

from pathlib import Path

from _log import redirect

from iman.figures import table4_heatmap

redirect(snakemake.log[0])  # noqa: F821
table4_heatmap(Path(snakemake.input[0]), Path(snakemake.output.png).with_suffix(""))  # noqa: F821
