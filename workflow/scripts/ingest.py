"""Rule ingest: validate the dataset, write manifest + per-case cache (all or nothing)."""

from pathlib import Path

from _log import redirect

from iman.data.ingest import ingest

redirect(snakemake.log[0])  # noqa: F821
p = snakemake.params  # noqa: F821
source = p.source
layout = "sheet" if source in ("sheet", "phantom") else source
root = Path(snakemake.input[0]) if snakemake.input else Path(p.root)  # noqa: F821
manifest = ingest(layout, root, Path(snakemake.output.manifest).parent, p.size,  # noqa: F821
                  min_frames=p.min_frames)
print(f"{len(manifest)} cases ingested")
