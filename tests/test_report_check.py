"""Browser test: build a real Snakemake report and check it in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_check import browser_available, check_report

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

SNAKEFILE = textwrap.dedent(
    '''
    rule all:
        input: "out/disc.png", "out/disc.pdf", "out/scores.csv"

    rule figure:
        output:
            png=report("out/disc.png", caption="report/disc.rst", category="Figures",
                       subcategory="Qualitative", labels={"figure": "Disc figure"}),
            pdf=report("out/disc.pdf", caption="report/disc.rst", category="Figures",
                       subcategory="Vector", labels={"figure": "Disc figure (PDF)"}),
        run:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.add_patch(plt.Circle((0.5, 0.5), 0.3, color="tab:red"))
            fig.savefig(output.png)
            fig.savefig(output.pdf)
            plt.close(fig)

    rule table:
        output:
            report("out/scores.csv", caption="report/scores.rst", category="Tables")
        run:
            with open(output[0], "w") as fh:
                fh.write("method,dsc\\nA,0.8\\nB,0.7\\n")
    '''
)


@pytest.fixture(scope="module")
def browser() -> None:
    """Make sure Chromium is there, installing it with the project script when missing."""
    if browser_available() is None:
        return
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install-browser.sh")],
                          capture_output=True, text=True)
    reason = browser_available()
    if reason is not None:
        pytest.fail(f"browser unavailable ({reason}); install-browser.sh said:\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real workflow with a PNG, a PDF and a CSV marked for the report."""
    wf = tmp_path_factory.mktemp("wf")
    (wf / "Snakefile").write_text(SNAKEFILE)
    (wf / "report").mkdir()
    (wf / "report" / "disc.rst").write_text("A red disc.\n")
    (wf / "report" / "scores.rst").write_text("Scores per method.\n")
    for args in (["-c1"], ["--report", "report.html"]):
        proc = subprocess.run([str(SNAKEMAKE), *args], cwd=wf, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    html = wf / "report.html"
    assert html.stat().st_size > 0
    return html


def test_report_lists_everything(browser: None, report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    problems = check_report(report_html, shot,
                            ["Disc figure", "Disc figure (PDF)", "scores.csv"])
    assert problems == []
    assert shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_name_is_reported(browser: None, report_html: Path, tmp_path: Path) -> None:
    problems = check_report(report_html, tmp_path / "shot.png", ["Disc figure", "table9"])
    assert problems == ["expected result not listed in the report: table9"]


def test_missing_report_is_a_problem(tmp_path: Path) -> None:
    problems = check_report(tmp_path / "nope.html", tmp_path / "shot.png", ["x"])
    assert len(problems) == 1 and "report not found" in problems[0]


def test_broken_image_is_reported(browser: None, report_html: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    text = report_html.read_text()
    assert "base64,iVBORw0KGgo" in text
    broken.write_text(text.replace("base64,iVBORw0KGgo", "base64,AAAAAAAAAAA"))
    problems = check_report(broken, tmp_path / "shot.png", ["Disc figure"])
    assert problems == ["Figures/Qualitative: Disc figure: image did not load (naturalWidth == 0)"]


@pytest.mark.dag
def test_workflow_report_shows_every_table_and_figure(browser: None, smoke_run: Path) -> None:
    """The real report of the smoke run, opened as a person would; screenshot kept."""
    results = smoke_run / "results"
    expect = [f"table{i}" for i in range(1, 6)] + [
        "Fig. 3 qualitative", "X pathway: margins per loop", "Table IV heatmap",
        "ablation bars table2", "ablation bars table5", "training curves table2",
        "training curves table5", "DSC distribution"]
    shot = results / "report_screenshot.png"
    problems = check_report(results / "report.html", shot, expect)
    assert problems == []
    assert shot.stat().st_size > 10_000
