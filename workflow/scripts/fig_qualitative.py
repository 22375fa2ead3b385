"""Rule fig_qualitative: Fig. 3 grid from each Table I method's selected-loop predictions."""

import json
from pathlib import Path

import pandas as pd
from _log import redirect

from iman.figures import pick_cases, qualitative_grid
from iman.tables import METHOD_LABELS

redirect(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
root = Path(sm.input.manifest).parent
methods, per_case = {}, {}
for method, summary_file in zip(sm.params.methods, sm.input.summaries):
    summary = json.loads(Path(summary_file).read_text())
    exp_dir = Path(summary_file).parent
    runs = Path(summary_file).parents[2] / "runs"
    methods[METHOD_LABELS.get(method, method)] = {
        m: runs / b["run"] / m / f"loop{b['loop']}" / "pred.npz"
        for m, b in summary["branches"].items()}
    per_case[method] = pd.read_csv(exp_dir / "per_case.csv", dtype={"case_id": str})
reference = per_case[sm.params.methods[-1]]  # IMAN: spread the cases over its DSC range
cases = pick_cases(reference, sm.params.n_cases)
qualitative_grid({c: root / "cache" / f"{c}.npz" for c in cases}, methods,
                 Path(sm.output.png).with_suffix(""))
