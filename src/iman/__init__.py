"""IMAN: iterative mutual-aid network for breast-lesion segmentation on US + CEUS.

The library behind the Snakemake workflow: data ingest and the synthetic phantom,
models, the margin mask generator, one trainer, metrics, experiments and tables.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
