"""Data: the synthetic US + CEUS phantom, ingest of real layouts, splits and frame selection."""
