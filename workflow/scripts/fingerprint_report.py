"""Rule fingerprint_report: the fingerprint's table (HTML) and histograms (PNG)."""

from pathlib import Path

from _log import run_logged

from iman.reporting.fingerprint import write_fingerprint_report

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_fingerprint_report, Path(sm.input.fingerprint),
           Path(sm.input.splits), Path(sm.output.table), Path(sm.output.png))
