"""Run one light step of iman.steps (named by the rule's ``params.step``) for this job."""

from iman import steps

sm = snakemake  # noqa: F821
getattr(steps, sm.params.step)(sm.input, sm.output, sm.params, sm.wildcards, sm.log)
