"""Rule fig_qualitative: Fig. 3 grid from each Table I method's selected-loop predictions."""

from pathlib import Path

from _log import run_logged

from iman.reporting.figures import qualitative_figure

sm = snakemake  # noqa: F821
run_logged(sm.log[0], qualitative_figure,
           methods=sm.params.methods,
           reference=sm.params.reference,
           files=dict(sm.input.items()),
           cache_dir=Path(sm.input.cache),
           n_cases=sm.params.n_cases,
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
