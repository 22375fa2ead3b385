"""The `sheet` layout: a CSV case sheet validated against its JSON schema."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import yaml

from iman.data.ingest.problems import Box, CaseSource, Problem


def default_schema_path() -> Path:
    """The case-sheet JSON schema shipped with the workflow (repository checkout)."""
    return Path(__file__).resolve().parents[4] / "workflow" / "schemas" / "case_sheet.schema.yaml"



def _schema_message(error: jsonschema.ValidationError) -> str:
    """A short sentence for one schema violation of a sheet row."""
    col = str(error.path[0]) if error.path else ""
    value = error.instance
    if error.validator == "required":
        name = re.findall(r"'([^']+)'", error.message)
        return f"missing value in required column {name[0] if name else error.message}"
    if error.validator == "type":
        return f"column {col}: {value!r} is not a {error.validator_value}"
    if error.validator in ("exclusiveMinimum", "minimum"):
        return f"column {col}: {value!r} must be > {error.validator_value}"
    if error.validator == "pattern":
        expected = error.schema.get("x-expected", error.validator_value)
        return f"column {col}: {value!r} is not {expected}"
    if error.validator == "enum":
        return f"column {col}: {value!r} is not one of {', '.join(error.validator_value)}"
    return f"column {col}: {error.message}"



def _coerce_row(record: dict[str, str], numeric: set[str]) -> dict[str, object]:
    """Sheet cells as schema instance: empty cells dropped, finite numbers parsed."""
    row: dict[str, object] = {}
    for key, text in record.items():
        text = str(text).strip()
        if not text:
            continue
        row[key] = text
        if key in numeric:
            try:
                number = float(text)
            except ValueError:
                continue
            if math.isfinite(number):
                row[key] = number
    return row



def _parse_box(text: object) -> Box | None:
    if text is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in str(text).split(","))
    return x0, y0, x1, y1



def _source_from_row(row: dict[str, object], base: Path) -> CaseSource:
    """A validated sheet row as a CaseSource (spacing default with a warning)."""
    warnings = []
    spacing = row.get("spacing_mm")
    if spacing is None:
        spacing = 1.0
        warnings.append("spacing_mm missing, 1.0 mm assumed")
    return CaseSource(
        case_id=str(row["case_id"]),
        patient_id=str(row["patient_id"]),
        source_split=str(row.get("split", "")),
        us_image=base / str(row["us_image"]),
        us_mask=base / str(row["us_mask"]),
        ceus=base / str(row["ceus"]),
        ceus_mask=base / str(row["ceus_mask"]),
        base=base,
        us_spacing_mm=float(spacing),
        ceus_spacing_mm=float(row.get("ceus_spacing_mm", spacing)),
        us_crop=_parse_box(row.get("us_crop")),
        ceus_crop=_parse_box(row.get("ceus_crop")),
        warnings=warnings,
    )



def _load_sheet_table(
    sheet: Path,
) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[Problem]]:
    """Header and (line number, cells) records of a CSV sheet; blank lines skipped.

    Short rows are padded with empty cells (missing values are caught by the schema); rows
    with more cells than the header are problems.
    """
    if not sheet.is_file():
        return [], [], [Problem("sheet", str(sheet), "case sheet missing")]
    try:
        with sheet.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except (csv.Error, UnicodeDecodeError) as exc:
        return [], [], [Problem("sheet", str(sheet), f"not a readable CSV ({exc})")]
    if not lines:
        return [], [], [Problem("sheet", sheet.name, "empty case sheet")]
    header = [c.strip() for c in lines[0][1]]
    records, problems = [], []
    for line, cells in lines[1:]:
        if len(cells) > len(header):
            problems.append(
                Problem(f"row {line}", sheet.name, f"{len(cells)} cells, header has {len(header)}")
            )
            continue
        records.append((line, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
    return header, records, problems



def _header_problems(
    columns: Iterable[str], schema: dict, sheet: Path
) -> tuple[list[Problem], bool]:
    """Problems of the sheet's header and whether they prevent reading its rows."""
    cols = list(columns)
    known, required = list(schema["properties"]), schema["required"]
    problems = [
        Problem("sheet", sheet.name, f"unknown column {c!r} (valid: {', '.join(known)})")
        for c in cols
        if c not in known
    ]
    fatal = [
        Problem("sheet", sheet.name, f"required column {c!r} missing")
        for c in required
        if c not in cols
    ]
    fatal += [
        Problem("sheet", sheet.name, f"column {c!r} appears more than once")
        for c, n in Counter(cols).items()
        if n > 1
    ]
    return problems + fatal, bool(fatal)



def read_case_sheet(
    sheet: Path, schema_path: Path | None = None
) -> tuple[list[CaseSource], list[Problem]]:
    """Cases of a CSV case sheet and every sheet-level problem (schema, duplicates)."""
    schema = yaml.safe_load((schema_path or default_schema_path()).read_text())
    header, records, problems = _load_sheet_table(sheet)
    if not header:
        return [], problems
    header_problems, fatal = _header_problems(header, schema, sheet)
    problems = header_problems + problems
    if fatal:
        return [], problems
    numeric = {k for k, v in schema["properties"].items() if v.get("type") == "number"}
    validator = jsonschema.Draft202012Validator(schema)
    sources: list[CaseSource] = []
    first_row: dict[str, int] = {}
    for line, cells in records:
        record = {k: v for k, v in cells.items() if k in schema["properties"]}
        row = _coerce_row(record, numeric)
        case = str(row.get("case_id", ""))
        label = f"{case} (row {line})" if case else f"row {line}"
        errors = sorted(validator.iter_errors(row), key=lambda e: list(e.path))
        problems += [Problem(label, sheet.name, _schema_message(e)) for e in errors]
        if case in first_row:
            problems.append(
                Problem(label, sheet.name, f"duplicate case_id (first on row {first_row[case]})")
            )
        elif case:
            first_row[case] = line
            if not errors:
                sources.append(_source_from_row(row, sheet.parent))
    return sources, problems
