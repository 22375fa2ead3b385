"""Rule table_data: one paper table's numbers and marks from its rows' summaries, per-case
rows and paired comparisons."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.paper_tables import table_data

sm = snakemake  # noqa: F821
run_logged(sm.log[0], table_data,
           name=sm.wildcards.table,
           rows=sm.params.rows,
           files=dict(sm.input.items()),
           csv=Path(sm.output.csv),
           marks=Path(sm.output.marks))
