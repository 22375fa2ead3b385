"""Rule margins: the MMG applied to one node's predictions of every case."""

from pathlib import Path

from _log import redirect

from iman.pipeline import make_margins_node

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
make_margins_node(Path(sm.input.pred), Path(sm.input.manifest), sm.wildcards.modality,
                  int(sm.wildcards.kernel), sm.wildcards.filter, sm.params.threshold,
                  Path(sm.output[0]))
