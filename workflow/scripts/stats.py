"""Rule stats: every table's paired comparisons in one stats.csv."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.comparisons import concat_stats

sm = snakemake  # noqa: F821
run_logged(sm.log[0], concat_stats,
           files=list(sm.input),
           out=Path(sm.output[0]))
