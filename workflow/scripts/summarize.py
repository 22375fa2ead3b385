"""Rule summarize: choose each branch's loop by validation DSC, report its test metrics."""

from pathlib import Path

from _log import redirect

from iman.experiments import Node
from iman.tables import summarize_experiment

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
nodes = [Node(run, modality, int(loop)) for run, modality, loop in sm.params.nodes]
summarize_experiment(sm.wildcards.exp, nodes, [Path(p) for p in sm.input], Path(sm.output.summary))
