"""Rule oracle_margins: MMG on the ground-truth masks of one modality (oracle control)."""

from pathlib import Path

from _log import run_logged

from iman.margins.nodes import make_oracle_margins

sm = snakemake  # noqa: F821
w = sm.wildcards
run_logged(sm.log[0], make_oracle_margins,
           cache_dir=Path(sm.input.cache),
           manifest_file=Path(sm.input.manifest),
           modality=w.modality,
           kernel=int(w.kernel),
           filt=w.filter,
           threshold=sm.params.threshold,
           out_file=Path(sm.output[0]))
