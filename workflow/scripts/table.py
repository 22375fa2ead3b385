"""Rule table: one paper table from its rows' experiment summaries."""

from pathlib import Path

from _log import run_logged

from iman.reporting.tables import table

sm = snakemake  # noqa: F821
run_logged(sm.log[0], table, sm.wildcards.table, sm.params.rows, dict(sm.input.items()),
           Path(sm.output.csv), Path(sm.output.md), Path(sm.output.tex), Path(sm.output.html))
