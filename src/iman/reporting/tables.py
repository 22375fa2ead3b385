"""Tables I–V rendered (md, tex, html) from their numbers and marks alone.

:func:`render_table` reads ``<table>.csv`` and ``<table>_marks.json``
(:func:`iman.evaluation.paper_tables.table_data`) and :func:`write_table` draws two blocks:
the standard metrics, and the paper-compatible ones with the printed paper value beside each;
``*`` where a row differs from its table reference row, the best value in bold where it
differs from the runner-up. Restyling a table reads no per-case file and retrains nothing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iman.evaluation.metrics import REPORTED_METRICS
from iman.evaluation.paper_tables import PAPER_BESIDE, REPORTED
from iman.names import MODALITIES

__all__ = ["ALPHA", "BETTER", "CAPTIONS", "TITLES", "WORSE", "controls_note", "direction_mark",
           "init_note", "legend", "render_table", "write_table"]


ALPHA = 0.05
"""Significance level of the table markers and of the best-vs-runner-up check."""


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
_HEAD = {short: m.label for short, m in REPORTED_METRICS.items()}
_LABELS = ("backbone", "method", "mmg", "itp", "modal_fusion", "frames", "kernel", "filter")
_PAPER = " (paper "


BETTER, WORSE = "▲", "▼"
"""Marks of a row that differs from its table reference row (Holm p < :data:`ALPHA`): better
or worse, in the metric's own direction (higher DSC, lower HD)."""


def direction_mark(p_holm: float, diff: float, higher: bool) -> str:
    """:data:`BETTER` or :data:`WORSE` when ``p_holm`` < ALPHA (by the sign of the paired
    difference row − reference and the metric's direction), else ``""``."""
    if pd.isna(p_holm) or pd.isna(diff) or not p_holm < ALPHA or diff == 0:
        return ""
    return BETTER if (diff > 0) == higher else WORSE


def _separated(separation: dict[str, Any] | None, col: str) -> bool:
    """Whether a column's best row differs from the runner-up in its favour (p < ALPHA)."""
    entry = (separation or {}).get(col)
    return bool(entry) and entry["favours"] == "best" and entry["p"] < ALPHA


def _display(df: pd.DataFrame, family: tuple[str, ...],
             separation: dict[str, Any] | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plain-text cells of one metric family and the mask of cells to set in bold.

    A metric cell is ``mean ± std`` over runs, then :data:`BETTER` / :data:`WORSE` when the
    row differs from its table reference row (``<col>_p_holm`` < :data:`ALPHA`, direction
    from ``<col>_diff``; DSC and HD only), then `` (paper x)`` only for the paper-compatible
    metrics in :data:`PAPER_BESIDE`. The best mean of a column is bold when it differs from
    the runner-up in its favour (``separation``), or, without ``separation``, always. The
    standard family adds each modality's empty-prediction count (``<mod>_n_empty``).
    """
    label_cols = [c for c in _LABELS if c in df]
    text = df[label_cols].astype(str).reset_index(drop=True)
    bold = pd.DataFrame(False, index=text.index, columns=label_cols)
    for modality in MODALITIES:
        if f"{modality}_dsc" not in df:
            continue
        for short in family:
            col, higher = f"{modality}_{short}", REPORTED[short][1]
            best = _best(df, col, higher)
            if separation is not None and not _separated(separation, col):
                best = None  # not told apart from the runner-up: no bold (n.s.)
            paper_col = (f"paper_{modality}_{PAPER_BESIDE[short]}" if short in PAPER_BESIDE
                         else None)
            cells, marks = [], []
            for _, r in df.iterrows():
                mean = r.get(col, np.nan)
                cell = _fmt(mean, r.get(f"{col}_std", np.nan))
                mark = direction_mark(r.get(f"{col}_p_holm", np.nan),
                                      r.get(f"{col}_diff", np.nan), higher)
                cell += f" {mark}" if mark else ""
                paper = r.get(paper_col, np.nan) if paper_col else np.nan
                if not pd.isna(paper):
                    cell += f"{_PAPER}{paper:.4f})"
                cells.append(cell)
                marks.append(best is not None and not pd.isna(mean) and mean == best)
            head = f"{modality.upper()} {_HEAD[short]} {'↑' if higher else '↓'}"
            text[head], bold[head] = cells, marks
        if family == STANDARD and f"{modality}_n_empty" in df:
            head = f"{modality.upper()} n_empty"
            text[head] = [("—" if pd.isna(v) else str(int(v)))
                          for v in df[f"{modality}_n_empty"]]
            bold[head] = False
    return text, bold


def _embolden(cell: str, start: str, end: str) -> str:
    """Wrap the reproduced value of a cell (``mean ± std``; not its mark or paper note) in
    ``start`` … ``end``, so markup never meets a mark (valid CommonMark)."""
    value, sep, rest = cell.partition(_PAPER)
    for mark in (BETTER, WORSE):
        if value.endswith(f" {mark}"):
            value, rest, sep = value[:-2], f" {mark}{sep}{rest}", ""
    return f"{start}{value}{end}{sep}{rest}"


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
                "×": r"$\times$", BETTER: r"$\blacktriangle$",
                WORSE: r"$\blacktriangledown$"}
"""Math symbols of the cells' signs (the triangles need amssymb)."""


def _tex_symbols(s: str) -> str:
    """Math symbols for the non-ASCII signs of the cells (after LaTeX escaping)."""
    for old, new in _TEX_SYMBOLS.items():
        s = s.replace(old, new)
    return s


def _tex_bold(s: str) -> str:
    """An escaped cell with its reproduced part in ``\\textbf``."""
    return _tex_symbols(_embolden(s, r"\textbf{", "}"))


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


def legend(separation: dict[str, Any] | None, empty_penalty_mm: Sequence[float] | None = None
           ) -> str:
    """What bold, the marks, n_empty and the unit of replication mean in a table
    (docs/statistics.md); every sentence about a column is true of that column."""
    if separation is None:
        return "Bold: best mean of the column."
    text = (f"Unit of replication: the test case. Each case's metric is averaged over the "
            f"row's runs (seeds × folds) before the paired test; mean ± std are over runs, "
            f"and each seed's own difference and how many seeds agree in sign with the "
            f"pooled one are in stats.csv (seed_diffs, seeds_agree). "
            f"Bold: best mean of the column, different from the runner-up (two-sided paired "
            f"sign-flip permutation test of the mean difference over their common test "
            f"cases, p < {ALPHA}, uncorrected) with the paired mean difference in its favour. "
            f"{BETTER} better / {WORSE} worse than the row's table reference row (column "
            f"reference; stats.csv rows with primary = True): Holm-adjusted p < {ALPHA} (same "
            f"test; Holm within the table, modality and metric), the direction that of the "
            f"metric (higher DSC, lower HD); DSC and HD (mm) columns only. n_cases: distinct "
            f"test cases.")
    not_sep = {c: e for c, e in separation.items() if not _separated(separation, c)}
    same = sorted(c for c, e in not_sep.items() if e["favours"] == "best")
    tied = sorted(c for c, e in not_sep.items() if e["favours"] == "tie")
    other = sorted(c for c, e in not_sep.items() if e["favours"] == "runner-up")
    if same:
        text += (" No bold in " + ", ".join(same) + ": the best is not significantly "
                 "different from the runner-up.")
    if tied:
        text += (" No bold in " + ", ".join(tied) + ": the best ties with the runner-up.")
    if other:
        text += (" No bold in " + ", ".join(
            f"{c} (p = {separation[c]['p']:.3g})" for c in other) + ": on their common "
            "test cases the paired difference favours the runner-up.")
    text += (" n_empty: empty predictions (nothing reaches 0.5 while the lesion is present), "
             "counted over cases × runs; each scores DSC 0 and HD = HD95 = the original "
             "image's diagonal")
    if empty_penalty_mm:
        low, high = min(empty_penalty_mm), max(empty_penalty_mm)
        text += (f" (here {low:.1f} mm)" if f"{low:.1f}" == f"{high:.1f}"
                 else f" (here {low:.1f}–{high:.1f} mm)")
    return text + ", which dominates a row's mean HD."


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


def init_note(rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """How the rows' networks were initialised.

    ``rows``: (row label, the pretrained files its networks started from, "" for a random
    start: :func:`iman.evaluation.paper_tables.init_files`); rows are grouped by their files.
    """
    groups: dict[str, list[str]] = {}
    for label, files in rows:
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


def write_table(table: str, df: pd.DataFrame, md: Path, tex: Path, page: Path,
                separation: dict[str, Any] | None = None, init: str = "",
                empty_penalty_mm: Sequence[float] | None = None) -> list[Path]:
    """Render ``df`` (a table's numbers) for both metric families: ``md``, ``tex`` and the
    ``page`` (html).

    ``separation`` (:func:`iman.evaluation.paper_tables.add_significance`): bold only where the
    best differs from the runner-up in its favour; without it the best mean is bold.
    ``init`` (:func:`init_note`) follows the legend.
    """
    for path in (md, tex, page):
        path.parent.mkdir(parents=True, exist_ok=True)
    standard = _display(df, STANDARD, separation)
    compatible = _display(df, COMPATIBLE, separation)
    note = " ".join(t for t in (legend(separation, empty_penalty_mm), controls_note(df), init)
                    if t)
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
    return [md, tex, page]


def render_table(name: str, csv: Path, marks: Path, md: Path, tex: Path, html: Path) -> None:
    """Render one paper table (``md``, ``tex``, ``html``) from its numbers and marks
    (:func:`iman.evaluation.paper_tables.table_data`): nothing else is read."""
    data = json.loads(Path(marks).read_text())
    df = pd.read_csv(csv, dtype={c: str for c in _LABELS})
    init = init_note(data["initialisation"])  # [[row label, files], ...]
    write_table(name, df, md, tex, html, data["separation"], init,
                data.get("empty_penalty_mm"))
