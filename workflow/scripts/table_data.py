"""Rule table_data: one paper table's numbers and marks from its rows' summaries, per-case
rows and paired comparisons."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.paper_tables import table_data

sm = snakemake  # noqa: F821
run_logged(sm.log[0], table_data, sm.wildcards.table, sm.params.rows, dict(sm.input.items()),
           Path(sm.output.csv), Path(sm.output.marks))
