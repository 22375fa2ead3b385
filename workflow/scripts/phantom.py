"""Rule phantom: write the synthetic US-CEUS dataset in the case-sheet layout."""

from pathlib import Path

from _log import redirect

from iman.data.phantom import generate

redirect(snakemake.log[0])  # noqa: F821
out = Path(snakemake.output.sheet).parent  # noqa: F821
sheet = generate(out, **snakemake.params.phantom)  # noqa: F821
print(f"phantom written: {sheet}")
