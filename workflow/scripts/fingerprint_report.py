"""Rule fingerprint_report: the fingerprint's table and the check's findings (HTML), and
histograms (PNG)."""

from pathlib import Path

from _log import run_logged

from iman.reporting.fingerprint import write_fingerprint_report

sm = snakemake  # noqa: F821
run_logged(sm.log[0], write_fingerprint_report,
           fingerprint_file=Path(sm.input.fingerprint),
           counts_file=Path(sm.input.split_counts),
           check_file=Path(sm.input.protocol_check),
           table_html=Path(sm.output.table),
           png=Path(sm.output.png))
