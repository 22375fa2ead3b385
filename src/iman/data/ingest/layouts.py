"""The one table of layout readers, used by ingest and by ``iman predict``: a layout name →
the function that lists a dataset's cases (and the problems of its sheet or folders)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from iman.data.ingest.iman_public import scan_iman_public
from iman.data.ingest.problems import CaseSource, Problem
from iman.data.ingest.sheet import read_case_sheet

__all__ = ["LAYOUTS", "case_sources", "read_layout"]

Reader = Callable[[Path], tuple[list[CaseSource], list[Problem]]]

LAYOUTS: dict[str, Reader] = {"sheet": read_case_sheet, "iman_public": scan_iman_public}
"""Layout name → reader. ``sheet``: a CSV case sheet (docs/data.md); ``iman_public``: the
authors' ``datasets/`` folder layout."""


def read_layout(layout: str, root: Path) -> tuple[list[CaseSource], list[Problem]]:
    """The cases of the dataset at ``root`` (a case sheet or a ``datasets/`` folder) read with
    ``layout``'s reader, and every problem found reading it."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](Path(root))


def case_sources(layout: str, root: Path) -> dict[str, CaseSource]:
    """Case id → where its files are (and their crops), as the ingest reads them."""
    sources, _ = read_layout(layout, root)
    return {s.case_id: s for s in sources}
