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

from iman.evaluation.paper_tables import REPORTED

__all__ = ["ALPHA", "CAPTIONS", "TITLES", "controls_note", "init_note", "legend",
           "render_table", "write_table"]


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
                separation: dict[str, float] | None = None, init: str = "") -> list[Path]:
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
    return [md, tex, page]


def render_table(name: str, csv: Path, marks: Path, md: Path, tex: Path, html: Path) -> None:
    """Render one paper table (``md``, ``tex``, ``html``) from its numbers and marks
    (:func:`iman.evaluation.paper_tables.table_data`): nothing else is read."""
    data = json.loads(Path(marks).read_text())
    df = pd.read_csv(csv, dtype={c: str for c in _LABELS})
    init = init_note(data["initialisation"])  # [[row label, files], ...]
    write_table(name, df, md, tex, html, data["separation"], init)
