"""Rule train: train one node (resuming if a checkpoint exists), predict every case."""

from pathlib import Path

from _log import redirect

from iman.experiments import Node
from iman.pipeline import train_node

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
node = Node(sm.wildcards.run, sm.wildcards.modality, int(sm.wildcards.loop))
summary = train_node(
    sm.config, node, Path(sm.input.manifest).parent / "cache", Path(sm.input.splits),
    Path(sm.input.frames[0]) if sm.input.frames else None, Path(sm.output.best).parent,
    init_weights=Path(sm.input.init) if node.loop >= 1 else None,
    margins_file=Path(sm.input.margins) if hasattr(sm.input, "margins") else None,
    threads=sm.threads,
)
print(summary)
