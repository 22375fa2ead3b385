"""Rule ingest: validate the dataset, write manifest + per-case cache (all or nothing)."""

from pathlib import Path

from _log import run_logged

from iman.data.ingest import ingest

sm = snakemake  # noqa: F821
p = sm.params
root = Path(sm.input.root) if hasattr(sm.input, "root") else Path(p.root)
run_logged(sm.log[0], ingest,
           layout=p.layout,
           root=root,
           out_dir=Path(sm.output.manifest).parent,
           size=p.size,
           min_frames=p.min_frames)
