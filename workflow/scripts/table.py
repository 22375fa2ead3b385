"""Rule table: one paper table rendered (md, tex, html) from its numbers and marks."""

from pathlib import Path

from _log import run_logged

from iman.reporting.tables import render_table

sm = snakemake  # noqa: F821
run_logged(sm.log[0], render_table, sm.wildcards.table, Path(sm.input.csv),
           Path(sm.input.marks), Path(sm.output.md), Path(sm.output.tex), Path(sm.output.html))
