"""Rule fingerprint_report: the fingerprint's table and the check's findings (HTML), and
histograms (PNG)."""

from pathlib import Path

from _log import run_logged

from iman.reporting.fingerprint import write_fingerprint_report

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_fingerprint_report, Path(sm.input.fingerprint),
           Path(sm.input.split_counts), Path(sm.input.protocol_check), Path(sm.output.table),
           Path(sm.output.png))
