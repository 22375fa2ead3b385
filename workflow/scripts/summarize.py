"""Rule summarize: choose each branch's loop by validation DSC; the experiment's summary."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.evaluate import summarize

sm = snakemake  # noqa: F821
run_logged(sm.log[0], summarize,
           experiment=sm.wildcards.exp,
           files=dict(sm.input.items()),
           summary_out=Path(sm.output.summary),
           per_case_out=Path(sm.output.per_case))
