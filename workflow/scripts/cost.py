"""Rule cost: wall time, device and epochs of every training job, and the total."""

from pathlib import Path

from _log import run_logged

from iman.reporting.cost import cost_table

sm = snakemake  # noqa: F821
run_logged(sm.log[0], cost_table,
           histories=list(sm.input.histories),
           provenances=list(sm.input.provenances),
           benchmarks=sm.params.benchmarks,
           out=Path(sm.output[0]))
