"""Every paired comparison of a table (table_stats rule) and their concatenation (stats rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from iman.evaluation.metrics import METRICS
from iman.experiments import row_title
from iman.names import MODALITIES, per_case_key

__all__ = ["STAT_METRICS", "concat_stats", "parse_seed_diffs",
           "seed_differences", "stats_table", "write_csv"]


STAT_METRICS = {m.column: (m.label, m.higher) for m in METRICS if m.tested}
"""Metrics tested per comparison, with (label, higher is better): the standard DSC and
Hausdorff distance."""



_STATS_COLUMNS = ["table", "comparison", "row", "reference", "primary", "modality", "metric",
                  "better", "n_runs", "n_cases", "mean_diff", "ci_low", "ci_high", "p",
                  "p_holm", "effect_size", "n_seeds", "seed_diffs", "seeds_agree",
                  "n_empty_row", "n_empty_reference", "test", "ci_method"]
"""Columns of ``stats.csv`` (docs/statistics.md). ``comparison`` is the reader's name
("IMAN vs baseline"), ``row``/``reference`` the machine keys
(:func:`iman.experiments.row_label`)."""


def write_csv(df: pd.DataFrame, out: Path) -> None:
    """A CSV at full precision: pandas writes each float's shortest round-trip repr, so a
    number read back is the number computed (no ``float_format``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)


def seed_differences(row: Sequence[pd.DataFrame], reference: Sequence[pd.DataFrame],
                     metric: str) -> dict[int, float]:
    """Each training seed's own mean paired difference (row − reference) of ``metric``: the
    row's and the reference's runs of that seed (folds pooled), on their common test cases."""
    from iman.evaluation.stats import case_means

    def by_seed(frames: Sequence[pd.DataFrame]) -> dict[int, list[pd.DataFrame]]:
        out: dict[int, list[pd.DataFrame]] = {}
        for f in frames:
            if "seed" in f and len(f):
                out.setdefault(int(f["seed"].iloc[0]), []).append(f)
        return out

    a, b = by_seed(row), by_seed(reference)
    diffs = {}
    for seed in sorted(set(a) & set(b)):
        x, y = case_means(a[seed], metric), case_means(b[seed], metric)
        common = x.index.intersection(y.index)
        if len(common):
            diffs[seed] = float((x[common] - y[common]).mean())
    return diffs




def stats_table(comparisons: Sequence[tuple[str, str, str, Sequence[str], Sequence[str]]],
                per_case: Mapping[str, str | Path], out: Path,
                modalities: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Every paired comparison of every table → ``stats.csv`` (docs/statistics.md).

    ``comparisons``: (table, row, reference row, row experiments, reference experiments);
    ``per_case``: each experiment's ``per_case.csv`` under :func:`~iman.names.per_case_key`;
    ``modalities``: table → the modalities it tests (default
    :data:`iman.evaluation.paper_tables.TABLE_MODALITIES`: Table III CEUS only, the others US and
    CEUS). ``primary`` marks a comparison against the row's table reference row
    (:func:`iman.evaluation.stats.table_reference_flags`), the one a table's ``*`` shows;
    ``better`` is the sign of ``mean_diff`` (and ``effect_size``) that means the row is
    better. Holm's correction runs within each table, modality and metric.
    """
    from iman.evaluation.paper_tables import table_modalities
    from iman.evaluation.stats import (
        CI_METHOD,
        TEST,
        case_means,
        compare,
        count_empty,
        holm,
        table_reference_flags,
    )

    def tested(table: str) -> Sequence[str]:
        return modalities.get(table, MODALITIES) if modalities is not None else (
            table_modalities(table))

    comparisons = [tuple(c) for c in comparisons]
    primary: dict[tuple[str, str, str], bool] = {}
    for table in dict.fromkeys(c[0] for c in comparisons):
        own = [c for c in comparisons if c[0] == table]
        flags = table_reference_flags([c[1] for c in own], [c[2] for c in own])
        primary.update({(c[0], c[1], c[2]): f for c, f in zip(own, flags)})
    frames = {e: pd.read_csv(per_case[per_case_key(e)], dtype={"case_id": str})
              for _, _, _, a, b in comparisons for e in (*a, *b)}
    records = []
    for table, row, ref, row_exps, ref_exps in comparisons:
        for modality in tested(table):
            pick = [f[f["modality"] == modality] for e in row_exps for f in [frames[e]]]
            base = [f[f["modality"] == modality] for e in ref_exps for f in [frames[e]]]
            if not any(len(f) for f in pick) or not any(len(f) for f in base):
                continue
            for metric, (_, higher) in STAT_METRICS.items():
                c = compare(case_means(pick, metric), case_means(base, metric))
                seeds = seed_differences(pick, base, metric)
                pooled = np.sign(c.mean_diff)
                records.append({
                    "table": table, "comparison": f"{row_title(row)} vs {row_title(ref)}",
                    "row": row, "reference": ref, "primary": primary[(table, row, ref)],
                    "modality": modality, "metric": metric,
                    "better": "positive" if higher else "negative",
                    "n_runs": len(row_exps), **c.as_dict(), "p_holm": float("nan"),
                    "n_seeds": len(seeds),
                    "seed_diffs": ";".join(f"{k}:{v!r}" for k, v in seeds.items()),
                    "seeds_agree": int(sum(pooled != 0 and np.sign(v) == pooled
                                           for v in seeds.values())),
                    "n_empty_row": count_empty(pick), "n_empty_reference": count_empty(base),
                    "test": TEST, "ci_method": CI_METHOD})
    df = pd.DataFrame(records, columns=_STATS_COLUMNS)
    for _, idx in df.groupby(["table", "modality", "metric"]).groups.items():
        df.loc[idx, "p_holm"] = holm(df.loc[idx, "p"].to_numpy())
    write_csv(df, out)
    return df


def parse_seed_diffs(cell: object) -> dict[int, float]:
    """``seed_diffs`` of a stats.csv row (``"0:0.012;1:-0.003"``) as {seed: difference}."""
    if not isinstance(cell, str) or not cell:
        return {}
    return {int(k): float(v) for k, v in (part.split(":", 1) for part in cell.split(";"))}



def concat_stats(files: Sequence[str | Path], out: Path) -> None:
    """The per-table comparison files as one ``stats.csv`` (table order kept), at full
    precision (pandas ≥ 3 parses each written float back to the same bits)."""
    frames = [pd.read_csv(f, dtype={"seed_diffs": str}) for f in files]
    write_csv(pd.concat(frames, ignore_index=True), out)
