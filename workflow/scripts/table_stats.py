"""Rule table_stats: paired comparisons of one table's rows (sign-flip test, its inverted
interval, Holm)."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.comparisons import stats_table

sm = snakemake  # noqa: F821
run_logged(sm.log[0], stats_table,
           comparisons=sm.params.comparisons,
           per_case=dict(sm.input.items()),
           out=Path(sm.output[0]))
