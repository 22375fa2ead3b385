"""Rule fig_qualitative: Fig. 3 grid from each Table I method's selected-loop predictions."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import qualitative_figure

sm = snakemake  # noqa: F821
run_logged(sm.log[0], qualitative_figure, sm.params.methods, sm.params.reference,
           dict(sm.input.items()), Path(sm.input.cache), sm.params.n_cases,
           Path(sm.output.png), Path(sm.output.pdf))
