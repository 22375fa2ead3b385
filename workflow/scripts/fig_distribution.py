"""Rule fig_distribution: per-case test DSC per Table I method."""

from pathlib import Path

import pandas as pd
from _log import redirect

from iman.figures import dsc_distribution
from iman.tables import METHOD_LABELS

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
frames = {METHOD_LABELS.get(m, m): pd.read_csv(p, dtype={"case_id": str})
          for m, p in zip(sm.params.methods, sm.input)}
dsc_distribution(frames, Path(sm.output.png).with_suffix(""))
