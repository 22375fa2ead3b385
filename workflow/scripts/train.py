"""Rule train: train one node (resuming if a checkpoint exists), predict every case."""

from pathlib import Path

from _log import run_logged

from iman.experiments import Node
from iman.training.node import train_node
from iman.training.trainer import CheckpointFiles

sm = snakemake  # noqa: F821
inp, out, w = sm.input, sm.output, sm.wildcards
run_logged(sm.log[0], train_node,
           protocol=sm.params.protocol,
           node=Node(w.run, w.modality, int(w.loop)),
           cache_dir=Path(inp.cache),
           splits_file=Path(inp.splits),
           fold=sm.params.fold,
           frames_file=Path(inp.frames) if hasattr(inp, "frames") else None,
           checkpoints=CheckpointFiles(best=Path(out.best), last=Path(out.last),
                                       resume=Path(sm.params.resume),
                                       history=Path(out.history)),
           pred_out=Path(out.pred),
           provenance_out=Path(out.provenance),
           init_weights=Path(inp.init) if hasattr(inp, "init") else None,
           margins_file=Path(inp.margins) if hasattr(inp, "margins") else None,
           margins_threshold=sm.params.margins_threshold,
           threads=sm.threads,
           fast_exit=True)
