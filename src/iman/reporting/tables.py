"""Experiment summaries and Tables I–V (csv, md, tex, html) made only from evaluation files.

Per-case metric rows → :func:`summarize_experiment` (choose each branch's loop by the mean
validation DSC, report that loop's *test* metrics) → :func:`build_table` (rows of a paper
table, mean ± sample std over runs (seeds × folds), the printed paper values) →
:func:`add_significance` (distinct test cases, ``*`` against each row's table reference,
which best differs from its runner-up) → :func:`write_table` (two blocks: the standard
metrics, and the paper-compatible ones with the printed paper value beside each; best value
in bold). Restyling a table never retrains anything.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.names import per_case_key, summary_key

__all__ = ["METHOD_LABELS", "TABLE_MODALITIES", "add_significance", "build_table", "legend",
           "paper_values", "table", "table_modalities", "write_table"]

METHOD_LABELS = {
    "unet": "UNet", "fpn": "FPN", "unetpp": "UNet++", "deeplabv3": "DeepLabV3",
    "transunet": "TransUNet", "swinunet": "SwinUNet", "aaunet": "AAU-net", "nunet": "NU-net",
    "dpran": "DpRAN", "ceusegnet": "CEUSegNet", "usseg": "US-SEG (seed)",
    "ggnet": "GG-Net (seed)", "dcnet": "DC-Net (seed)", "iman": "IMAN",
}
# reported columns: name in the table -> (metric column, higher is better)
REPORTED = {
    "dsc": ("std_dsc", True), "hd": ("std_hd_mm", False), "hd95": ("std_hd95_mm", False),
    "soft_dsc": ("paper_soft_dsc", True), "row_hd": ("paper_row_hd", False),
}
TABLE_MODALITIES: dict[str, tuple[str, ...]] = {"table3": ("ceus",)}
"""Modalities a table reports and tests when not both (Table III: CEUS only; every frame
count shares one US node, so its US comparisons would be a node against itself)."""


def table_modalities(table: str) -> tuple[str, ...]:
    """The modalities of a table's columns and of its paired comparisons."""
    return TABLE_MODALITIES.get(table, ("us", "ceus"))




def paper_values(table: str) -> pd.DataFrame:
    """The printed values of a paper table (shipped with the package)."""
    ref = resources.files("iman") / "resources" / "paper_tables" / f"{table}.csv"
    with ref.open() as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _paper_row(table: str, labels: dict[str, Any]) -> dict[str, float]:
    paper = paper_values(table)
    key = dict(labels)
    if "method" in key:
        key["method"] = METHOD_LABELS.get(key["method"], key["method"])
    if "backbone" in key:
        key["backbone"] = METHOD_LABELS.get(key["backbone"], key["backbone"])
    mask = np.ones(len(paper), bool)
    for k, v in key.items():
        if k not in paper.columns:
            return {}
        mask &= paper[k].astype(str) == str(v)
    if not mask.any():
        return {}
    row = paper[mask].iloc[0]
    return {f"paper_{c}": float(row[c]) for c in paper.columns
            if c.endswith(("_dsc", "_hd")) and row[c] != ""}


def build_table(table: str, rows: list[tuple[dict[str, Any], list[dict[str, Any]]]]
                ) -> pd.DataFrame:
    """One CSV row per table row: labels, reproduced mean/std over runs, paper values.

    The number of test cases behind a row (``<mod>_n_cases``) needs the per-case rows and is
    added by :func:`add_significance`.
    """
    records = []
    modalities = table_modalities(table)
    for labels, summaries in rows:
        rec: dict[str, Any] = dict(labels)
        if "method" in labels:
            rec["method"] = METHOD_LABELS.get(labels["method"], labels["method"])
        for modality in modalities:
            for short, (col, _) in REPORTED.items():
                vals = [s["branches"][modality]["test"][col]["mean"] for s in summaries
                        if modality in s["branches"]]
                if vals:
                    rec[f"{modality}_{short}"] = float(np.mean(vals))
                    rec[f"{modality}_{short}_std"] = (float(np.std(vals, ddof=1))
                                                      if len(vals) > 1 else np.nan)
            loops = [s["branches"][modality]["loop"] for s in summaries
                     if modality in s["branches"]]
            if loops:
                rec[f"{modality}_loop"] = ",".join(map(str, loops))
        rec.update(_paper_row(table, labels))
        rec["n_runs"] = len(summaries)  # seeds x folds
        records.append(rec)
    return pd.DataFrame(records)


ALPHA = 0.05
"""Significance level of the table markers and of the best-vs-runner-up check."""
_STAT_OF = {"dsc": "std_dsc", "hd": "std_hd_mm"}  # table columns tested in stats.csv


def _table_reference_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The comparisons of ``stats`` against their table's reference row (``primary``; derived
    with :func:`iman.evaluation.stats.table_reference_flags` for a frame without that column)."""
    from iman.evaluation.stats import table_reference_flags

    if "primary" in stats:
        return stats[stats["primary"].astype(bool)]
    keep = pd.Series(False, index=stats.index)
    tables = stats.groupby("table").groups.values() if "table" in stats else [stats.index]
    for idx in tables:
        pairs = stats.loc[idx, ["row", "reference"]].drop_duplicates()
        flags = table_reference_flags(list(pairs["row"]), list(pairs["reference"]))
        primary = {(r, ref) for (r, ref), f in zip(pairs.itertuples(index=False), flags) if f}
        keep[idx] = [(r, ref) in primary
                     for r, ref in zip(stats.loc[idx, "row"], stats.loc[idx, "reference"])]
    return stats[keep]


def _case_counts(df: pd.DataFrame, per_case: list[list[pd.DataFrame]]) -> None:
    """``<mod>_n_cases``: distinct test cases over a row's runs (a case tested by 3 seeds
    counts once), placed after ``<mod>_loop``."""
    for modality in ("us", "ceus"):
        if f"{modality}_loop" not in df:
            continue
        counts = []
        for runs in per_case:
            ids: set[str] = set()
            for f in runs:
                rows = f[f["modality"] == modality]
                if "split" in rows:
                    rows = rows[rows["split"] == "test"]
                ids.update(rows["case_id"].astype(str))
            counts.append(len(ids) if ids else None)
        col = f"{modality}_n_cases"
        values = pd.array(counts, dtype="Int64")
        if col in df:
            df[col] = values
        else:
            df.insert(df.columns.get_loc(f"{modality}_loop") + 1, col, values)


def add_significance(df: pd.DataFrame, row_names: list[str],
                     per_case: list[list[pd.DataFrame]], stats: pd.DataFrame | None
                     ) -> dict[str, float]:
    """Add the per-case facts of each row to ``df`` and return, per displayed column, the p
    that decides its bold.

    Added columns: ``<mod>_n_cases`` (distinct test cases over the row's runs), ``reference``
    (the row's table reference row) and ``<mod>_<dsc|hd>_p_holm`` (the Holm-adjusted p of the
    row vs that reference, from ``stats``, matched on (row, reference): a row's comparisons
    with other rows never set its ``*``). ``row_names``/``per_case`` follow ``df``'s rows
    (``per_case``: each run's rows).

    Returned: per column, the two-sided p (:func:`iman.evaluation.stats.compare`) of its best
    row vs the
    runner-up, or 1 when the paired mean difference does not favour the best (given the
    metric's direction) or the two means tie.
    """
    from iman.evaluation.stats import case_means, compare

    _case_counts(df, per_case)
    if stats is not None and len(stats):
        primary = _table_reference_rows(stats)
        reference = dict(zip(primary["row"], primary["reference"]))
        if len(reference) != len(primary[["row", "reference"]].drop_duplicates()):
            raise ValueError("a row of the table has two table reference rows in stats")
        df["reference"] = [reference.get(r, "") for r in row_names]
        for modality in ("us", "ceus"):
            for short, metric in _STAT_OF.items():
                sub = primary[(primary["modality"] == modality) & (primary["metric"] == metric)]
                p = {(r, ref): v for r, ref, v in zip(sub["row"], sub["reference"], sub["p_holm"])}
                if f"{modality}_{short}" in df:
                    df[f"{modality}_{short}_p_holm"] = [p.get((r, reference.get(r)), np.nan)
                                                        for r in row_names]
    separation: dict[str, float] = {}
    for modality in ("us", "ceus"):
        for short, (metric, higher) in REPORTED.items():
            col = f"{modality}_{short}"
            if col not in df or df[col].notna().sum() < 2:
                continue
            order = df[col].sort_values(ascending=not higher).dropna().index
            best, second = order[0], order[1]
            if df.at[best, col] == df.at[second, col]:
                separation[col] = 1.0
                continue

            def values(i: Any, metric: str = metric, modality: str = modality) -> pd.Series:
                runs = [f[f["modality"] == modality] for f in per_case[i]]
                return case_means(runs, metric)

            c = compare(values(best), values(second))
            favours_best = c.mean_diff > 0 if higher else c.mean_diff < 0
            separation[col] = c.p if favours_best else 1.0
    return separation


def _fmt(mean: Any, std: Any) -> str:
    """``mean ± std`` with four decimals; ``—`` for a missing mean, no ``±`` without a std."""
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None and not pd.isna(std) else "")


def _best(df: pd.DataFrame, col: str, higher: bool) -> float | None:
    if col not in df or df[col].isna().all():
        return None
    return float(df[col].max() if higher else df[col].min())


# metric families shown as separate blocks; the printed paper values stand only beside the
# paper-compatible family (CSV column paper_<mod>_<printed>, see docs/metrics.md)
STANDARD = ("dsc", "hd", "hd95")
COMPATIBLE = ("soft_dsc", "row_hd")
PAPER_BESIDE = {"soft_dsc": "dsc", "row_hd": "hd"}
_HEAD = {"dsc": "DSC", "hd": "HD (mm)", "hd95": "HD95 (mm)", "soft_dsc": "soft DSC",
         "row_hd": "row-HD"}
_LABELS = ("backbone", "method", "mmg", "itp", "modal_fusion", "frames", "kernel", "filter")
_PAPER = " (paper "


def _display(df: pd.DataFrame, family: tuple[str, ...],
             separation: dict[str, float] | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plain-text cells of one metric family and the mask of cells to set in bold.

    A metric cell is ``mean ± std`` over runs, ``*`` when ``<col>_p_holm`` < :data:`ALPHA`
    (the row differs from its table reference row; DSC and HD only), then `` (paper x)`` only
    for the paper-compatible metrics in :data:`PAPER_BESIDE`. The best mean of a column is
    bold when ``separation[col]`` < ALPHA (it differs from the runner-up, in its favour), or,
    without ``separation``, always.
    """
    label_cols = [c for c in _LABELS if c in df]
    text = df[label_cols].astype(str).reset_index(drop=True)
    bold = pd.DataFrame(False, index=text.index, columns=label_cols)
    for modality in ("us", "ceus"):
        if f"{modality}_dsc" not in df:
            continue
        for short in family:
            col, higher = f"{modality}_{short}", REPORTED[short][1]
            best = _best(df, col, higher)
            if separation is not None and separation.get(col, 1.0) >= ALPHA:
                best = None  # not told apart from the runner-up: no bold (n.s.)
            paper_col = (f"paper_{modality}_{PAPER_BESIDE[short]}" if short in PAPER_BESIDE
                         else None)
            cells, marks = [], []
            for _, r in df.iterrows():
                mean = r.get(col, np.nan)
                cell = _fmt(mean, r.get(f"{col}_std", np.nan))
                if r.get(f"{col}_p_holm", np.nan) < ALPHA:
                    cell += " *"
                paper = r.get(paper_col, np.nan) if paper_col else np.nan
                if not pd.isna(paper):
                    cell += f"{_PAPER}{paper:.4f})"
                cells.append(cell)
                marks.append(best is not None and not pd.isna(mean) and mean == best)
            head = f"{modality.upper()} {_HEAD[short]} {'↑' if higher else '↓'}"
            text[head], bold[head] = cells, marks
    return text, bold


def _embolden(cell: str, start: str, end: str) -> str:
    """Wrap the reproduced part of a cell (not its paper note) in ``start`` … ``end``."""
    value, sep, note = cell.partition(_PAPER)
    return f"{start}{value}{end}{sep}{note}"


def _bold_cells(bold: pd.DataFrame) -> dict[str, list[int]]:
    """Rows to set in bold, by column."""
    return {c: bold.index[bold[c]].tolist() for c in bold.columns if bold[c].any()}


def _markdown(text: pd.DataFrame, bold: pd.DataFrame) -> str:
    """Pipe table (``DataFrame.to_markdown``), best cells as ``**…**``."""
    cells = text.map(lambda s: s.replace("|", r"\|"))
    for col, rows in _bold_cells(bold).items():
        cells.loc[rows, col] = cells.loc[rows, col].map(lambda s: _embolden(s, "**", "**"))
    cells.columns = [c.replace("|", r"\|") for c in cells.columns]
    return cells.to_markdown(index=False, disable_numparse=True)


_TEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "--",
                "×": r"$\times$"}


def _tex_symbols(s: str) -> str:
    """Math symbols for the non-ASCII signs of the cells (after LaTeX escaping)."""
    for old, new in _TEX_SYMBOLS.items():
        s = s.replace(old, new)
    return s


def _tex_bold(s: str) -> str:
    """An escaped cell with its reproduced part in ``\\textbf``."""
    return _embolden(_tex_symbols(s), r"\textbf{", "}")


def _latex(text: pd.DataFrame, bold: pd.DataFrame) -> str:
    """A bare ``tabular`` (``Styler.to_latex``): every cell and header LaTeX-escaped."""
    st = text.style.hide(axis="index").format(_tex_symbols, escape="latex")
    st = st.format_index(_tex_symbols, escape="latex", axis=1)
    for col, rows in _bold_cells(bold).items():
        st = st.format(_tex_bold, escape="latex", subset=(rows, [col]))
    st = st.set_table_styles([{"selector": rule, "props": ":hline;"}
                              for rule in ("toprule", "midrule", "bottomrule")])
    n_labels = sum(c in _LABELS for c in text.columns)
    return st.to_latex(column_format="l" * n_labels + "r" * (len(text.columns) - n_labels))


def _html_table(text: pd.DataFrame, bold: pd.DataFrame, caption: str, uuid: str) -> str:
    """One ``<table>`` with its caption (``Styler.to_html``), best cells in ``<b>``."""
    st = text.style.hide(axis="index").set_uuid(uuid).set_caption(html.escape(caption))
    st = st.format(escape="html").format_index(escape="html", axis=1)
    for col, rows in _bold_cells(bold).items():
        st = st.format(lambda s: _embolden(s, "<b>", "</b>"), escape="html",
                       subset=(rows, [col]))
    return st.to_html()


TITLES = {
    "table1": "Table I. Comparison with other segmentation methods",
    "table2": "Table II. Ablation of the modules in IMAN",
    "table3": "Table III. CEUS segmentation with different numbers of frames",
    "table4": "Table IV. MMG parameter settings (kernel size × filter)",
    "table5": "Table V. IMAN on other segmentation frameworks",
}
CAPTIONS = {
    "standard": "Standard metrics, test split, mean ± std over runs (seeds × folds): DSC "
                "of the mask thresholded at 0.5, boundary Hausdorff HD and HD95 in mm, at "
                "the original image size. The paper printed no values of this family.",
    "compatible": "Paper-compatible metrics, test split, mean ± std over runs (seeds × "
                  "folds) (printed paper value): soft Dice on the probabilities and the "
                  "authors' row-vector Hausdorff distance (row-HD, working size, no unit), "
                  "computed as the paper's Tables I–V were.",
}
_STYLE = ("body{font-family:sans-serif;margin:16px}"
          "table{border-collapse:collapse;margin:4px 0 20px}"
          "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
          "th{background:#eee}caption{caption-side:top;text-align:left;padding:4px 0}")


def _html(title: str, blocks: list[tuple[str, tuple[pd.DataFrame, pd.DataFrame]]],
          uuid: str, note: str = "") -> str:
    """A self-contained HTML page (readable inside the Snakemake report)."""
    tables = [_html_table(text, bold, caption, f"{uuid}_{i}")
              for i, (caption, (text, bold)) in enumerate(blocks)]
    return "\n".join([
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h2>{html.escape(title)}</h2>", *tables, f"<p>{html.escape(note)}</p>",
        "</body></html>", ""])


def legend(separation: dict[str, float] | None) -> str:
    """What bold, ``*`` and n.s. mean in a table (docs/statistics.md)."""
    if separation is None:
        return "Bold: best mean of the column."
    ns = sorted(c for c, p in separation.items() if p >= ALPHA)
    text = (f"Bold: best mean of the column, different from the runner-up (two-sided paired "
            f"sign-flip permutation test of the mean difference over the test cases, "
            f"p < {ALPHA}, uncorrected) with the paired mean difference in its favour. "
            f"*: Holm-adjusted p < {ALPHA} (same test; Holm within the table, modality and "
            f"metric) against the row's table reference row (column reference; stats.csv "
            f"rows with primary = True); DSC and HD (mm) columns only. mean ± std: over runs "
            f"(seeds × folds); n_cases: distinct test cases.")
    if ns:
        text += (" n.s. (no bold): the best of " + ", ".join(ns)
                 + " is not significantly different from the runner-up.")
    return text


def controls_note(df: pd.DataFrame) -> str:
    """What the control rows of an ablation table are (empty when it has none)."""
    if "modal_fusion" not in df:
        return ""
    fusion = df["modal_fusion"].astype(str)
    parts = []
    if ((df["mmg"].astype(str) == "0") & (df["itp"].astype(str) == "1")).any():
        parts.append("mmg=0 itp=1: the epoch-matched control (the baseline continued for the "
                     "same loops, warm starts and LR restarts, no margins)")
    if (fusion == "oracle").any():
        parts.append("modal_fusion=oracle: IMAN's loops on margins made by the MMG from the "
                     "other modality's ground-truth mask, in training and test (a positive "
                     "control and diagnostic upper bound)")
    if (fusion == "mismatched").any():
        parts.append("modal_fusion=mismatched: IMAN's loops on the other modality's predicted "
                     "margins of a different patient (a negative control)")
    if not parts:
        return ""
    return ("Controls (not in the paper, not methods; never used by iman predict): "
            + "; ".join(parts) + ".")


def init_note(rows: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> str:
    """How the rows' networks were initialised, read from their summaries' node records.

    ``rows``: (row label, its experiment summaries). Each node's recorded protocol names its
    pretrained file (or none); rows are grouped by the files they started from.
    """
    groups: dict[str, list[str]] = {}
    for label, summaries in rows:
        files = sorted({Path(rec["protocol"]["weights"]).name if rec["protocol"].get("weights")
                        else "" for s in summaries
                        for rec in s.get("provenance", {}).values() if "protocol" in rec})
        key = " + ".join(f for f in files if f) or ""
        if "" in files and key:
            key += " (some branches random)"
        groups.setdefault(key, []).append(label)
    if list(groups) == [""]:
        return "Initialisation: every network trained from random initialisation."
    parts = [f"{', '.join(labels)} from {key}" for key, labels in groups.items() if key]
    if "" in groups:
        parts.append(f"{', '.join(groups[''])} from random initialisation")
    return "Initialisation: " + "; ".join(parts) + "."


def write_table(table: str, df: pd.DataFrame, csv: Path, md: Path, tex: Path, page: Path,
                separation: dict[str, float] | None = None, init: str = "") -> list[Path]:
    """Write ``df`` to ``csv`` and, for both metric families, ``md``, ``tex`` and the
    ``page`` (html).

    ``separation`` (:func:`add_significance`): bold only where the best differs from the
    runner-up in its favour; without it the best mean is bold. ``init`` (:func:`init_note`)
    follows the legend.
    """
    for path in (csv, md, tex, page):
        path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    standard = _display(df, STANDARD, separation)
    compatible = _display(df, COMPATIBLE, separation)
    note = " ".join(t for t in (legend(separation), controls_note(df), init) if t)
    md.write_text("\n\n".join([f"### {TITLES[table]}",
                                CAPTIONS["standard"], _markdown(*standard),
                                CAPTIONS["compatible"], _markdown(*compatible), note, ""]),
                  encoding="utf-8")
    tex.write_text("\n".join([
        f"% {TITLES[table]} -- standard metrics (no printed paper value)", _latex(*standard),
        "% paper-compatible metrics: reproduced (printed paper value)", _latex(*compatible),
        f"% {note}"]), encoding="utf-8")
    blocks = [(CAPTIONS["standard"], standard), (CAPTIONS["compatible"], compatible)]
    page.write_text(_html(TITLES[table], blocks, table, note), encoding="utf-8")
    return [csv, md, tex, page]


def table(name: str, rows: Sequence[tuple[dict[str, Any], Sequence[str]]],
          files: Mapping[str, str | Path], csv: Path, md: Path, tex: Path,
          html: Path) -> None:
    """One paper table (``csv``, ``md``, ``tex``, ``html``) from its rows (labels, experiment
    names), their summaries (:func:`~iman.names.summary_key`), per-case rows
    (:func:`~iman.names.per_case_key`) and the table's paired comparisons (``stats``)."""
    from iman.experiments import row_label

    loaded = {exp: json.loads(Path(files[summary_key(exp)]).read_text())
              for _, exps in rows for exp in exps}
    df = build_table(name, [(dict(lab), [loaded[e] for e in exps]) for lab, exps in rows])
    per_case = {exp: pd.read_csv(files[per_case_key(exp)], dtype={"case_id": str})
                for _, exps in rows for exp in exps}
    separation = add_significance(
        df, [row_label(dict(lab)) for lab, _ in rows],
        [[per_case[e] for e in exps] for _, exps in rows], pd.read_csv(files["stats"]))
    init = init_note([(row_label(dict(lab)), [loaded[e] for e in exps]) for lab, exps in rows])
    write_table(name, df, csv, md, tex, html, separation, init)
