"""The problems of a dataset and where a case's files are: what every layout reader and
check produces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from iman.errors import UserError

Box = tuple[int, int, int, int]



Size = tuple[int, int]



T = TypeVar("T")



WARNING_SEP = " | "



@dataclass(frozen=True)
class Problem:
    """One problem of the dataset: the case, the file and what is wrong with it."""

    case: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.case}: {self.file}: {self.message}"



class DatasetError(UserError):
    """Every problem found in a dataset; the message lists all of them, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) found in the dataset:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))



@dataclass
class CaseSource:
    """Where one case's files are and how to read them, as given by a layout."""

    case_id: str
    patient_id: str
    source_split: str
    us_image: Path
    us_mask: Path
    ceus: Path
    ceus_mask: Path
    base: Path
    us_spacing_mm: float = 1.0
    ceus_spacing_mm: float = 1.0
    us_crop: Box | None = None
    ceus_crop: Box | None = None
    warnings: list[str] = field(default_factory=list)



class _CaseError(Exception):
    """A single problem of one file, raised inside a case check."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message



@dataclass
class _Collector:
    """Collects the problems of one case with file names relative to the dataset root."""

    case: str
    base: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.case, _show(path, self.base), message))

    def run(self, fn: Callable[[], T]) -> T | None:
        """Result of `fn`, or None after recording the `_CaseError` it raised."""
        try:
            return fn()
        except _CaseError as fail:
            self.add(fail.path, fail.message)
            return None



def _show(path: Path, base: Path) -> str:
    """Path relative to the dataset root when inside it, else as given."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)



def _fmt(size: Size) -> str:
    return f"{size[0]}x{size[1]}"
