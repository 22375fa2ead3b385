"""Rule margins: MMG on one node's predictions of every case."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_margins_node

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], make_margins_node,
           pred_file=Path(sm.input.pred),
           manifest_file=Path(sm.input.manifest),
           modality=w.modality,
           kernel=int(w.kernel),
           filt=w.filter,
           threshold=sm.params.threshold,
           out_file=Path(sm.output[0]))
