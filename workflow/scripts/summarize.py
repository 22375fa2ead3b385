"""Rule summarize: choose each branch's loop by validation DSC; the experiment's summary."""

from pathlib import Path

from _log import run_logged

from iman.evaluation.evaluate import summarize

sm = snakemake  # noqa: F821
run_logged(sm.log[0], summarize, sm.wildcards.exp, dict(sm.input.items()),
           Path(sm.output.summary), Path(sm.output.per_case))
