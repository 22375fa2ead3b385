"""Ingest of a real US + CEUS dataset into the manifest and the per-case cache.

Two layouts are read: a CSV case sheet (`sheet`) and the authors' public folder layout
(`iman_public`). The ingest runs in two passes. The first checks every case cheaply (files
exist, still images and masks decode, mask sizes, frame headers, frame counts) and collects
every problem of the whole dataset; if there is any, one `DatasetError` lists them all and
nothing is written. The second pass decodes the CEUS frames, resizes everything to the working
size and writes `manifest.csv` and `cache/<case_id>.npz` into a temporary sibling directory
that replaces the previous output only when every case succeeded. See docs/data.md.

Modules: `problems` (what every reader and check reports), `sheet` and `iman_public` (the
layout readers) behind the one table `layouts.LAYOUTS`, `checks` (first pass), `arrays`
(second pass, originals for predict), `build` (`ingest`, the atomic swap, the CLI).
"""

from iman.data.ingest.arrays import MANIFEST_COLUMNS, read_original
from iman.data.ingest.build import ingest, main_ingest
from iman.data.ingest.checks import ASPECT_TOL
from iman.data.ingest.iman_public import scan_iman_public
from iman.data.ingest.layouts import LAYOUTS, case_sources, read_layout
from iman.data.ingest.problems import CaseSource, DatasetError, Problem
from iman.data.ingest.sheet import default_schema_path, read_case_sheet

__all__ = [
    "ASPECT_TOL",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "CaseSource",
    "DatasetError",
    "Problem",
    "case_sources",
    "default_schema_path",
    "ingest",
    "main_ingest",
    "read_case_sheet",
    "read_layout",
    "read_original",
    "scan_iman_public",
]
