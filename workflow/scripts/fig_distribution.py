"""Rule fig_distribution: per-case test DSC per Table I method."""

from pathlib import Path

import pandas as pd
from _log import run_logged

from iman.figures import dsc_distribution
from iman.tables import METHOD_LABELS

sm = snakemake  # noqa: F821
frames = {METHOD_LABELS.get(m, m): pd.read_csv(sm.input[f"per_case_{m}"], dtype={"case_id": str})
          for m in sm.params.methods}
run_logged(sm.log[0], dsc_distribution, frames, Path(sm.output.png).with_suffix(""))
