"""Tables from summaries: loop selection by validation, mean ± std, paper values, bold."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from iman.experiments import Node
from iman.tables import build_table, paper_values, summarize_experiment, write_table


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
    s = summarize_experiment("exp", nodes, files, tmp_path / "e" / "summary.json")
    assert s["branches"]["us"]["loop"] == 1  # best validation, although loop 2 tests better
    assert s["branches"]["us"]["test"]["std_dsc"]["mean"] == pytest.approx(0.5)
    assert json.loads((tmp_path / "e" / "summary.json").read_text()) == s
    per_case = pd.read_csv(tmp_path / "e" / "per_case.csv")
    assert set(per_case["split"]) == {"test"} and set(per_case["loop"]) == {1}


def _summary(us: float | None, ceus: float | None) -> dict:
    branches = {}
    for m, v in (("us", us), ("ceus", ceus)):
        if v is not None:
            branches[m] = {"loop": 0, "test": {c: {"mean": v, "std": 0.0} for c in (
                "std_dsc", "std_hd_mm", "std_hd95_mm", "paper_soft_dsc", "paper_row_hd")}}
    return {"branches": branches}


def test_table1_layout_paper_values_and_bold(tmp_path: Path) -> None:
    rows = [({"method": "unet"}, [_summary(0.6, 0.5), _summary(0.8, 0.7)]),
            ({"method": "aaunet"}, [_summary(0.65, None), _summary(0.75, None)]),
            ({"method": "iman"}, [_summary(0.5, 0.9), _summary(0.5, 0.9)])]
    df = build_table("table1", rows)
    assert list(df["method"]) == ["UNet", "AAU-net", "IMAN"]
    assert df.loc[0, "us_dsc"] == pytest.approx(0.7) and df.loc[0, "us_dsc_std"] == \
        pytest.approx(0.1)
    assert pd.isna(df.loc[1, "ceus_dsc"])  # US-only method: no CEUS cell
    assert df.loc[0, "paper_us_dsc"] == pytest.approx(0.7805)
    assert df.loc[2, "paper_ceus_dsc"] == pytest.approx(0.8116)
    csv, md, tex, html = write_table("table1", df, tmp_path / "table1")
    text = md.read_text()
    assert "**0.7000 ± 0.1000** (paper 0.7805)" in text  # best US DSC in bold (tie-free)
    assert "| AAU-net |" in text and "—" in text
    assert r"\textbf{0.9000" in tex.read_text() and "<b>0.9000" in html.read_text()
    assert pd.read_csv(csv).shape[0] == 3


def test_paper_values_are_the_printed_ones() -> None:
    t4 = paper_values("table4")
    row = t4[(t4.kernel == "75") & (t4["filter"] == "gaussian")].iloc[0]
    assert float(row.us_dsc) == 0.8268 and float(row.ceus_hd) == 7.0210
    assert len(paper_values("table5")) == 20
