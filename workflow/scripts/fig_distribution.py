"""Rule fig_distribution: per-case test DSC per Table I method."""

from pathlib import Path

import pandas as pd
from _log import run_logged

from iman.models.registry import method_label
from iman.names import per_case_key
from iman.reporting.figures import dsc_distribution

sm = snakemake  # noqa: F821
files = dict(sm.input.items())
frames = {method_label(m): pd.read_csv(files[per_case_key(m)], dtype={"case_id": str})
          for m in sm.params.methods}
run_logged(sm.log[0], dsc_distribution,
           per_case=frames,
           png=Path(sm.output.png),
           pdf=Path(sm.output.pdf))
