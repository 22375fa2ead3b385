"""Rule evaluate: per-case metrics (standard and paper-compatible) of one node."""

from pathlib import Path

from _log import redirect

from iman.pipeline import evaluate_node

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
evaluate_node(Path(sm.input.pred), Path(sm.input.manifest).parent / "cache",
              Path(sm.input.splits), sm.wildcards.modality, sm.params.fold, Path(sm.output[0]))
