"""Tables from summaries: loop selection by validation, mean ± std, paper values, bold."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iman.evaluation.evaluate import summarize_experiment
from iman.evaluation.paper_tables import build_table, paper_values
from iman.experiments import Node
from iman.reporting.tables import write_table


def _metrics(path: Path, val: float, test: float) -> Path:
    rows = [{"case_id": f"V{i}", "split": "val", "std_dsc": val, "std_hd_mm": 2.0,
             "std_hd95_mm": 1.0, "paper_soft_dsc": val, "paper_row_hd": 3.0} for i in range(2)]
    rows += [{"case_id": f"T{i}", "split": "test", "std_dsc": test + 0.1 * (i - 0.5),
              "std_hd_mm": 4.0, "std_hd95_mm": 3.0, "paper_soft_dsc": test,
              "paper_row_hd": 5.0} for i in range(2)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_loop_is_selected_by_validation_not_test(tmp_path: Path) -> None:
    nodes = [Node("r", "us", 1), Node("r", "us", 2)]
    files = [_metrics(tmp_path / "a.csv", val=0.9, test=0.5),
             _metrics(tmp_path / "b.csv", val=0.7, test=0.95)]
    s, per_case = summarize_experiment("exp", nodes, files)
    assert s["branches"]["us"]["loop"] == 1  # best validation, although loop 2 tests better
    assert s["branches"]["us"]["test"]["std_dsc"]["mean"] == pytest.approx(0.5)
    # sample std (ddof=1) over the test cases 0.45 and 0.55
    assert s["branches"]["us"]["test"]["std_dsc"]["std"] == pytest.approx(math.sqrt(0.005))
    assert json.loads(json.dumps(s)) == s  # plain JSON
    assert set(per_case["split"]) == {"test"} and set(per_case["loop"]) == {1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]  # writes nothing


def _outs(stem: Path) -> list[Path]:
    """The rendered table's three files: md, tex, html."""
    return [stem.with_suffix(f".{ext}") for ext in ("md", "tex", "html")]


def _summary(us: float | None, ceus: float | None) -> dict:
    branches = {}
    for m, v in (("us", us), ("ceus", ceus)):
        if v is not None:
            branches[m] = {"loop": 0, "test": {c: {"mean": v, "std": 0.0} for c in (
                "std_dsc", "std_hd_mm", "std_hd95_mm", "paper_soft_dsc", "paper_row_hd")}}
    return {"branches": branches}


def _cells(md: str, head: str) -> list[str]:
    """Data cells under the column ``head`` of the markdown tables in ``md``."""
    for block in md.split("\n\n"):
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")]
                for ln in block.splitlines() if ln.startswith("|")]
        if rows and head in rows[0]:
            return [r[rows[0].index(head)] for r in rows[2:]]
    raise KeyError(head)


def test_table1_layout_paper_values_and_bold(tmp_path: Path) -> None:
    rows = [({"method": "unet"}, [_summary(0.6, 0.5), _summary(0.8, 0.7)]),
            ({"method": "aaunet"}, [_summary(0.6, None), _summary(0.7, None)]),
            ({"method": "iman"}, [_summary(0.5, 0.9), _summary(0.5, 0.9)])]
    df = build_table("table1", rows)
    assert list(df["method"]) == ["UNet", "AAU-net", "IMAN"]
    assert df.loc[0, "us_dsc"] == pytest.approx(0.7)
    assert df.loc[0, "us_dsc_std"] == pytest.approx(math.sqrt(0.02))  # ddof=1 over 2 seeds
    assert pd.isna(df.loc[1, "ceus_dsc"])  # US-only method: no CEUS cell
    assert df.loc[0, "paper_us_dsc"] == pytest.approx(0.7805)
    assert df.loc[2, "paper_ceus_dsc"] == pytest.approx(0.8116)
    md, tex, html = write_table("table1", df, *_outs(tmp_path / "table1"))
    assert [p.suffix for p in (md, tex, html)] == [".md", ".tex", ".html"]
    text = md.read_text(encoding="utf-8")
    assert "**0.7000 ± 0.1414** (paper 0.7805)" in text  # best US soft DSC in bold (tie-free)
    assert "AAU-net" in text and "—" in text
    assert df.shape[0] == 3
    assert list(df.filter(like="paper_").columns) == [
        "paper_us_dsc", "paper_us_hd", "paper_ceus_dsc", "paper_ceus_hd"]


def _one_seed_table() -> pd.DataFrame:
    """Two methods, one seed each: soft DSC and row-HD differ from DSC and HD (mm)."""
    def summary(dsc: float, soft: float, hd: float, row: float) -> dict:
        vals = {"std_dsc": dsc, "std_hd_mm": hd, "std_hd95_mm": hd / 2,
                "paper_soft_dsc": soft, "paper_row_hd": row}
        test = {c: {"mean": v, "std": 0.0} for c, v in vals.items()}
        return {"branches": {m: {"loop": 0, "test": test} for m in ("us", "ceus")}}

    return build_table("table1", [({"method": "unet"}, [summary(0.61, 0.62, 11.0, 3.1)]),
                                  ({"method": "iman"}, [summary(0.71, 0.72, 12.0, 3.2)])])


def test_paper_values_stand_beside_the_compatible_family_only(tmp_path: Path) -> None:
    df = _one_seed_table()
    md, _, html = write_table("table1", df, *_outs(tmp_path / "t1"))
    text = md.read_text(encoding="utf-8")
    # UNet: paper US DSC 0.7805, US HD 6.4727; IMAN: 0.8396, 6.1450 (Table I)
    assert _cells(text, "US soft DSC ↑") == ["0.6200 (paper 0.7805)",
                                             "**0.7200** (paper 0.8396)"]
    assert _cells(text, "US row-HD ↓") == ["**3.1000** (paper 6.4727)", "3.2000 (paper 6.1450)"]
    assert _cells(text, "CEUS soft DSC ↑")[0] == "0.6200 (paper 0.7448)"
    assert _cells(text, "CEUS row-HD ↓")[0] == "**3.1000** (paper 7.2023)"
    for head in ("US DSC ↑", "US HD (mm) ↓", "US HD95 (mm) ↓", "CEUS DSC ↑",
                 "CEUS HD (mm) ↓", "CEUS HD95 (mm) ↓"):
        assert not any("paper" in c for c in _cells(text, head)), head
    assert _cells(text, "US DSC ↑") == ["0.6100", "**0.7100**"]
    assert _cells(text, "US HD (mm) ↓") == ["**11.0000**", "12.0000"]
    page = html.read_text(encoding="utf-8")
    assert "<meta charset='utf-8'>" in page and "<title>Table I." in page
    assert page.count("<caption>") == 2
    assert ">0.6200 (paper 0.7805)</td>" in page
    assert "><b>3.1000</b> (paper 6.4727)</td>" in page
    assert ">0.6100</td>" in page and "><b>11.0000</b></td>" in page  # standard: no paper
    for value in ("0.6100", "0.7100", "11.0000", "12.0000"):
        assert f"{value} (paper" not in page and f"{value}</b> (paper" not in page


def test_best_cell_is_bold_in_md_tex_and_html(tmp_path: Path) -> None:
    md, tex, html = write_table("table1", _one_seed_table(), *_outs(tmp_path / "t1"))
    assert "| **0.7100** " in md.read_text(encoding="utf-8")
    latex = tex.read_text(encoding="utf-8")
    assert r"\textbf{0.7100}" in latex and r"\textbf{0.7200} (paper 0.8396)" in latex
    assert r"\textbf{11.0000}" in latex and r"\textbf{0.6100}" not in latex
    page = html.read_text(encoding="utf-8")
    assert "<b>0.7100</b>" in page and "<b>0.6100</b>" not in page


def test_latex_escapes_every_special_character(tmp_path: Path) -> None:
    summary = _summary(0.6, 0.5)
    df = build_table("table1", [({"method": "50% & $x_{1}#"}, [summary]),
                                ({"method": r"a~b^c\d"}, [summary])])
    md, tex, html = write_table("table1", df, *_outs(tmp_path / "t1"))
    latex = tex.read_text(encoding="utf-8")
    assert r"50\% \& \$x\_\{1\}\#" in latex
    assert r"a\textasciitilde b\textasciicircum c\textbackslash d" in latex
    assert "50% &" not in latex
    assert latex.startswith("%") and latex.count(r"\begin{tabular}") == 2
    assert "50% &amp; $x_{1}#" in html.read_text(encoding="utf-8")  # HTML-escaped instead
    assert "50% & $x_{1}#" in md.read_text(encoding="utf-8")


def test_over_seed_std_is_the_sample_std() -> None:
    df = build_table("table3", [({"frames": 5}, [_summary(None, 0.5), _summary(None, 0.7)]),
                                ({"frames": 3}, [_summary(None, 0.6)])])
    assert df.loc[0, "ceus_dsc"] == pytest.approx(0.6)
    assert df.loc[0, "ceus_dsc_std"] == pytest.approx(0.1414213562)  # ddof=1, not 0.1
    assert pd.isna(df.loc[1, "ceus_dsc_std"])  # one seed: no std
    assert "us_dsc" not in df  # Table III: CEUS only


def test_paper_values_are_the_printed_ones() -> None:
    t4 = paper_values("table4")
    row = t4[(t4.kernel == "75") & (t4["filter"] == "gaussian")].iloc[0]
    assert float(row.us_dsc) == 0.8268 and float(row.ceus_hd) == 7.0210
    assert len(paper_values("table5")) == 20


def test_bold_only_where_the_best_differs_from_the_runner_up_and_triangles_mark_holm(
        tmp_path: Path) -> None:
    from iman.evaluation.paper_tables import add_significance, build_table
    from iman.reporting.tables import write_table

    def summary(dsc: float) -> dict:
        test = {c: {"mean": dsc, "std": 0.0} for c in
                ("std_dsc", "std_hd_mm", "std_hd95_mm", "paper_soft_dsc", "paper_row_hd")}
        return {"branches": {"us": {"loop": 0, "run": "r", "n_test": 8, "test": test}}}

    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.6, 8)
    cases = [f"C{i}" for i in range(8)]

    def rows(values: np.ndarray) -> list[pd.DataFrame]:
        return [pd.DataFrame({"case_id": cases, "split": "test", "modality": "us",
                              **{c: values for c in ("std_dsc", "std_hd_mm", "std_hd95_mm",
                                                     "paper_soft_dsc", "paper_row_hd")}})]

    clear = [rows(base + 0.2), rows(base), rows(base - 0.01)]   # best >> runner-up
    df = build_table("table1", [({"method": m}, [summary(float(np.mean(r[0]["std_dsc"])))])
                                for m, r in zip(("unet", "fpn", "iman"), clear)])
    stats = pd.DataFrame({"table": "table1", "row": ["method=unet", "method=fpn"],
                          "reference": "method=iman", "modality": "us",
                          "metric": "std_dsc", "p_holm": [0.01, 0.4],
                          "mean_diff": [0.21, 0.01]})
    sep = add_significance(df, ["method=unet", "method=fpn", "method=iman"], clear, stats)
    # all 8 differences favour the best
    assert sep["us_dsc"] == {"p": pytest.approx(2 / 2**8), "favours": "best"}
    write_table("table1", df, *_outs(tmp_path / "t1"), sep)
    md = (tmp_path / "t1.md").read_text()
    assert "**0.7" in md and "▲ better / ▼ worse than the row's table reference row" in md
    assert md.count(" ▲ |") == 1 and "0.5" in md and "***" not in md
    _assert_commonmark_bold(md, n_bold=_n_bold(df, sep))
    # a tie-like best: the runner-up is as good on the cases -> no bold, n.s. in the legend
    close = [rows(base + 0.001 * (np.arange(8) % 2 * 2 - 1)), rows(base), rows(base - 0.2)]
    df2 = build_table("table1", [({"method": m}, [summary(float(np.mean(r[0]["std_dsc"])))])
                                 for m, r in zip(("unet", "fpn", "iman"), close)])
    sep2 = add_significance(df2, ["method=unet", "method=fpn", "method=iman"], close, None)
    assert sep2["us_dsc"]["p"] >= 0.05
    write_table("table1", df2, *_outs(tmp_path / "t2"), sep2)
    md2 = (tmp_path / "t2.md").read_text()
    best = f"{df2.loc[0, 'us_dsc']:.4f}"
    assert best in md2 and f"**{best}" not in md2  # the DSC best is not bold
    assert sep2["us_dsc"] == {"p": 1.0, "favours": "tie"}  # equal means over runs
    tied = md2.split("No bold in ", 1)[1].split(":", 1)[0].split(", ")
    assert "us_dsc" in tied and ": the best ties with the runner-up." in md2
    assert "**" in md2  # HD: the best (IMAN, 0.2 lower) is clearly apart and stays bold


def _runs(cases: list[str], values: np.ndarray, modality: str = "us") -> pd.DataFrame:
    """One run's per-case rows, every reported metric equal to ``values``."""
    return pd.DataFrame({"case_id": cases, "split": "test", "modality": modality,
                         **{c: values for c in ("std_dsc", "std_hd_mm", "std_hd95_mm",
                                                "paper_soft_dsc", "paper_row_hd")}})


def test_bold_needs_the_paired_difference_in_the_best_rows_favour() -> None:
    from iman.evaluation.paper_tables import add_significance

    # the table means (over runs) rank UNet first, but on the paired cases UNet is worse
    # than FPN on every one of 10 cases (p = 2/1024, in FPN's favour): no bold
    cases = [f"C{i}" for i in range(10)]
    fpn = np.linspace(0.5, 0.7, 10)
    per_case = [[_runs(cases, fpn - 0.05)], [_runs(cases, fpn)], [_runs(cases, fpn - 0.3)]]
    df = pd.DataFrame({"method": ["UNet", "FPN", "IMAN"], "us_loop": "0",
                       "us_dsc": [0.8, 0.7, 0.3], "us_hd": [0.5, 0.6, 0.1]})
    sep = add_significance(df, ["method=unet", "method=fpn", "method=iman"], per_case, None)
    # significant, but in the runner-up's favour
    assert sep["us_dsc"] == {"p": pytest.approx(2 / 1024), "favours": "runner-up"}
    # HD (lower is better): IMAN's per-case values are lowest too, in its favour: kept
    assert sep["us_hd"] == {"p": pytest.approx(2 / 1024), "favours": "best"}
    assert _display_bold(df, sep) == {"US DSC ↑": [], "US HD (mm) ↓": [2]}
    # the legend says what is true: the runner-up is the better one on the paired cases
    from iman.reporting.tables import legend

    text = legend(sep)
    assert "us_dsc (p = 0.00195): on their common test cases the paired difference favours " \
           "the runner-up" in text
    assert "not significantly different" not in text


def _n_bold(df: pd.DataFrame, sep: dict[str, dict]) -> int:
    """Bold cells of both metric families of a rendered table."""
    from iman.reporting.tables import COMPATIBLE, STANDARD, _display

    return sum(int(_display(df, fam, sep)[1].to_numpy().sum()) for fam in (STANDARD, COMPATIBLE))


def _assert_commonmark_bold(md: str, n_bold: int) -> None:
    """The markdown parses (CommonMark + pipe tables, markdown-it-py) with every bold cell as
    <strong> and no asterisk left over as text."""
    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable("table").render(md)
    assert page.count("<strong>") == n_bold > 0
    assert "*" not in page, [ln for ln in page.splitlines() if "*" in ln][:3]


def test_markdown_bold_is_valid_commonmark_on_best_and_significant_cells(tmp_path: Path
                                                                          ) -> None:
    from iman.reporting.tables import write_table

    # UNet is best, significantly better than IMAN (▲) and apart from the runner-up (bold);
    # FPN is significantly worse (▼); the paper value stands beside the soft DSC
    df = pd.DataFrame({"method": ["UNet", "FPN", "IMAN"], "us_loop": "0",
                       "us_dsc": [0.7893, 0.41, 0.62], "us_dsc_std": [0.01, 0.02, 0.03],
                       "us_dsc_p_holm": [0.001, 0.002, np.nan],
                       "us_dsc_diff": [0.17, -0.21, np.nan],
                       "us_hd": [3.0, 9.0, 4.0], "us_hd_p_holm": [0.01, 0.01, np.nan],
                       "us_hd_diff": [-1.0, 5.0, np.nan], "us_hd95": [2.0, 8.0, 3.0],
                       "us_soft_dsc": [0.8, 0.5, 0.7], "paper_us_dsc": [0.7, 0.6, 0.8],
                       "us_row_hd": [1.0, 2.0, 1.5]})
    sep = {c: {"p": 0.001, "favours": "best"} for c in
           ("us_dsc", "us_hd", "us_hd95", "us_soft_dsc", "us_row_hd")}
    md_path, tex, page = _outs(tmp_path / "t")
    write_table("table1", df, md_path, tex, page, sep)
    md = re.sub(r" +\|", " |", md_path.read_text())  # the cells without their padding
    assert "| **0.7893 ± 0.0100** ▲ |" in md and "| 0.4100 ± 0.0200 ▼ |" in md
    assert "| **3.0000** ▲ |" in md and "| 9.0000 ▼ |" in md  # HD: lower is better
    _assert_commonmark_bold(md, n_bold=5)
    assert r"\textbf{0.7893 $\pm$ 0.0100} $\blacktriangle$" in tex.read_text()


def test_direction_marks_follow_the_metric_direction() -> None:
    from iman.reporting.tables import BETTER, WORSE, direction_mark

    assert direction_mark(0.01, 0.1, higher=True) == BETTER
    assert direction_mark(0.01, -0.1, higher=True) == WORSE
    assert direction_mark(0.01, -2.0, higher=False) == BETTER  # HD went down
    assert direction_mark(0.01, 2.0, higher=False) == WORSE
    assert direction_mark(0.2, 0.1, higher=True) == ""
    assert direction_mark(np.nan, 0.1, higher=True) == ""


def _display_bold(df: pd.DataFrame, sep: dict[str, dict]) -> dict[str, list[int]]:
    from iman.reporting.tables import _display

    _, bold = _display(df, ("dsc", "hd"), sep)
    return {c: bold.index[bold[c]].tolist() for c in bold.columns if c.startswith("US")}


def test_n_cases_counts_distinct_test_cases_over_runs() -> None:
    from iman.evaluation.paper_tables import add_significance

    cases = [f"C{i}" for i in range(6)]
    v = np.linspace(0.4, 0.6, 6)
    seeds = [_runs(cases, v), _runs(cases, v + 0.01)]  # two seeds on the same 6 cases
    folds = [_runs(cases[:3], v[:3]), _runs(cases[3:], v[3:])]  # two folds, 3 cases each
    ceus = [pd.concat([_runs(cases, v), _runs(cases[:2], v[:2], "ceus")])]
    df = pd.DataFrame({"method": ["A", "B", "C"], "us_loop": "0", "us_dsc": [0.5, 0.4, 0.3],
                       "ceus_loop": ["0", None, "0"], "n_runs": 2})
    add_significance(df, ["a", "b", "c"], [seeds, folds, ceus], None)
    assert list(df["us_n_cases"]) == [6, 6, 6]  # not 12 for the seeds
    assert list(df["ceus_n_cases"].astype("Float64").fillna(-1)) == [-1, -1, 2]
    assert list(df.columns[:5]) == ["method", "us_loop", "us_n_cases", "us_n_empty", "us_dsc"]
    assert df["us_n_empty"].isna().all()  # per-case rows without the empty-prediction flag


def test_n_empty_counts_empty_predictions_over_cases_and_runs() -> None:
    from iman.evaluation.metrics import EMPTY_PRED
    from iman.evaluation.paper_tables import add_significance

    cases = [f"C{i}" for i in range(4)]
    v = np.array([0.0, 0.6, 0.0, 0.7])
    seed0 = _runs(cases, v).assign(**{EMPTY_PRED: [1.0, 0.0, 1.0, 0.0]})
    seed1 = _runs(cases, v).assign(**{EMPTY_PRED: [1.0, 0.0, 0.0, 0.0]})
    df = pd.DataFrame({"method": ["A"], "us_loop": "0", "us_dsc": [0.3]})
    add_significance(df, ["a"], [[seed0, seed1]], None)
    assert df.loc[0, "us_n_empty"] == 3 and df.loc[0, "us_n_cases"] == 4


def test_star_is_keyed_by_row_and_table_reference() -> None:
    from iman.evaluation.paper_tables import add_significance

    # Table II: MMG+ITP vs the baseline (table reference, n.s.) and vs the control (listed
    # last, significant): no `*` from the control comparison, whatever the order
    stats = pd.DataFrame({
        "table": "table2", "modality": "us", "metric": "std_dsc",
        "row": ["ctl", "itp", "itp"], "reference": ["base", "base", "ctl"],
        "p_holm": [0.5, 0.3, 0.001], "mean_diff": [0.0, 0.1, 0.1]})
    runs = [[_runs(["a", "b"], np.array([m, m]))] for m in (0.5, 0.5, 0.6)]
    for frame in (stats, stats.iloc[::-1]):
        df = pd.DataFrame({"mmg": [0, 0, 1], "us_dsc": [0.5, 0.5, 0.6]})
        add_significance(df, ["base", "ctl", "itp"], runs, frame)
        assert list(df["us_dsc_p_holm"].fillna(-1)) == [-1, 0.5, 0.3]
        assert list(df["reference"]) == ["", "base", "base"]
    # an explicit primary column wins over the structural rule
    flagged = stats.assign(primary=[True, False, True])
    df = pd.DataFrame({"mmg": [0, 0, 1], "us_dsc": [0.5, 0.5, 0.6]})
    add_significance(df, ["base", "ctl", "itp"], runs, flagged)
    assert list(df["us_dsc_p_holm"].fillna(-1)) == [-1, 0.5, 0.001]
