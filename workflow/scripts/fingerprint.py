"""Rule fingerprint: what the ingested data look like (manifest, cache) -> JSON."""

from pathlib import Path

from _log import run_logged

from iman.data.fingerprint import write_fingerprint

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_fingerprint,
           manifest_file=Path(sm.input.manifest),
           cache_dir=Path(sm.input.cache),
           out=Path(sm.output[0]))
