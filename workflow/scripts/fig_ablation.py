"""Rule fig_ablation: Table II / V ablations as grouped bars."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import ablation_bars

sm = snakemake  # noqa: F821
run_logged(sm.log[0], ablation_bars,
           table_csv=Path(sm.input.table),
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
