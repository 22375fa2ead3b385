"""Rule margins: MMG on one node's predictions of every case."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_margins_node

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], make_margins_node, Path(sm.input.pred), Path(sm.input.manifest),
           w.modality, int(w.kernel), w.filter, sm.params.threshold, Path(sm.output[0]))
