"""Rule fig_margins: the 'X' pathway of one test case across IMAN's loops."""

from pathlib import Path

import pandas as pd
from _log import redirect

from iman.figures import margin_pathway, pick_cases

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
case = pick_cases(pd.read_csv(sm.input.per_case, dtype={"case_id": str}), 1)[0]
preds, margins = list(sm.input.preds), list(sm.input.margins)
loops = []
for loop in range(sm.params.loops + 1):
    entry = {"us_pred": preds[2 * loop], "ceus_pred": preds[2 * loop + 1]}
    if loop >= 1:
        entry["us_margin"], entry["ceus_margin"] = margins[2 * (loop - 1)], margins[2 * loop - 1]
    loops.append(entry)
cache = Path(sm.input.manifest).parent / "cache" / f"{case}.npz"
margin_pathway(case, cache, loops, Path(sm.output.png).with_suffix(""))
