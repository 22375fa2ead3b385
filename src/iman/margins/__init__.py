"""Margins: the margin map generator (MMG) and the margin files of the margins rules (own,
cross, oracle and mismatched routings)."""
