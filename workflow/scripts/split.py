"""Rule split: patient-grouped, seeded split(s) -> splits.json."""

from pathlib import Path

import pandas as pd
from _log import redirect

from iman.data.split import write_splits

redirect(snakemake.log[0])  # noqa: F821
s = snakemake.params.split  # noqa: F821
manifest = pd.read_csv(snakemake.input.manifest, dtype={"case_id": str, "patient_id": str})  # noqa: F821
out = write_splits(manifest, Path(snakemake.output[0]), s["ratios"], s["seed"],  # noqa: F821
                   s["folds"], s["use_source_split"])
print({k: len(v) for k, v in out["folds"][s["fold"]].items()})
