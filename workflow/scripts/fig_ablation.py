"""Rule fig_ablation: Table II / V ablations as grouped bars."""

from pathlib import Path

from _log import redirect

from iman.figures import ablation_bars

redirect(snakemake.log[0])  # noqa: F821
ablation_bars(Path(snakemake.input[0]), Path(snakemake.output.png).with_suffix(""))  # noqa: F821
