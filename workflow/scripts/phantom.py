"""Rule phantom: write the synthetic US-CEUS dataset in the case-sheet layout."""

from pathlib import Path

from _log import run_logged

from iman.data.phantom import generate

sm = snakemake  # noqa: F821
run_logged(sm.log[0], generate,
           out_dir=Path(sm.output.sheet).parent,
           **sm.params.phantom)
