"""Reporting: Tables I–V (csv, md, tex, html), figures and the cost table, made only from
the evaluation files (restyling never retrains)."""
