"""Evaluation: per-case metrics, experiment summaries (loop selection on validation), paired
statistics and every table's comparisons, power and margin diagnostics."""
