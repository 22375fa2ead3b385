"""Rule cost: wall time, memory, device and epochs of every training job, and the total."""

from pathlib import Path

from _log import redirect

from iman.cost import collect_costs, write_cost_table

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
bench = [Path(p) for p in sm.params.benchmarks if Path(p).exists()]
total = write_cost_table(collect_costs(bench, [Path(p) for p in sm.input]), Path(sm.output[0]))
print(f"total training wall time: {total:.1f} s")
