"""Rule table: one paper table rendered (md, tex, html) from its numbers and marks."""

from pathlib import Path

from _log import run_logged

from iman.reporting.tables import render_table

sm = snakemake  # noqa: F821
run_logged(sm.log[0], render_table,
           name=sm.wildcards.table,
           csv=Path(sm.input.csv),
           marks=Path(sm.input.marks),
           md=Path(sm.output.md),
           tex=Path(sm.output.tex),
           html=Path(sm.output.html))
