"""Rule oracle_margins: MMG on the ground-truth masks of one modality (oracle control)."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_oracle_margins

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], make_oracle_margins, Path(sm.input.cache), Path(sm.input.manifest),
           w.modality, int(w.kernel), w.filter, sm.params.threshold, Path(sm.output[0]))
