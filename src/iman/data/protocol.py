"""Does the protocol fit the data? The config checked against the dataset fingerprint.

Run before any training (:func:`check_once`, from every training node's input function, after
the checkpoint ``split_counts``), by the rule ``check_protocol`` (the record
``protocol_check.json``) and by ``iman plan``. Each finding names the config key and the
cases; a finding is an *error* only where a job would certainly fail, otherwise a
*warning*. The bounds and why:

* MMG kernel vs lesion (warning). The margin is ``dilate XOR erode`` with an ellipse of
  ``k`` original pixels (:func:`iman.data.geometry.kernel_axes`: ``kh × kw`` at the working
  size S). Erosion takes ``k/2`` off every side, so when the element's equivalent diameter
  ``sqrt(kh·kw)`` reaches the lesion's equivalent diameter at S, nothing of a round lesion is
  left inside: the margin is the dilated blob, not a band around the boundary (the authors'
  k = 100 on their 224-px US does this). Both are equivalent diameters of the same squashed
  geometry, so the comparison does not depend on the aspect ratio (up to the rounding of the
  element to odd sides). Each kernel is checked against both modalities' lesions: a
  branch's setting erodes its own predictions in the self rows (Tables II, IV, V) and the
  other modality's in IMAN's cross routing. An element 1 px along an axis has no band along
  it (warning).
* ``frames.T``/``frames.step`` vs the shortest video (warning). ``middle`` needs
  ``(T − 1)·step + 1`` frames around the middle, ``keyframes`` T frames; shorter videos never
  fail (:mod:`iman.data.frames` clamps to the video and repeats its first/last frame), so
  this is a warning; ``dataset.min_frames`` rejects short cases at ingest instead.
* aspect ratio (warning): S×S squashes an H×W image by ``max(W/H, H/W)``; bound
  :data:`MAX_DISTORTION` = 1.5, which admits the paper's own squash (560×460 CEUS frames to
  320×320: 1.22) and flags a round lesion drawn 1.5× wider than tall. A working size above
  the largest original side upsamples (warning: no information gained, cost paid).
* lesions below :data:`MIN_LESION_PX` = 4 px equivalent diameter at S (warning): half a cell
  of an output-stride-8 map (DeepLabV3), no network here draws them reliably.
* tiny test folds (warning): fewer than :data:`MIN_TEST_CASES` = 9 test cases in a fold. The
  paired sign-flip test's smallest p is ``2/2ⁿ``; after Holm over Table II's largest family
  (10 comparisons) ``10·2/2ⁿ < 0.05`` needs n ≥ 9 (docs/statistics.md).
* errors: a fold without training or validation cases (the trainer divides by the number of
  training cases; validation concatenates the predictions of none), and the mismatched-pairs
  control (``tables.table2.mismatched``) on a subset whose cases cannot each get another
  patient's (:func:`iman.data.split.cross_patient_derangement` raises).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from iman.config import ConfigError
from iman.data.geometry import kernel_axes
from iman.names import MODALITIES

__all__ = [
    "MAX_DISTORTION",
    "MIN_LESION_PX",
    "MIN_TEST_CASES",
    "Finding",
    "check_once",
    "check_protocol",
    "format_findings",
    "protocol_settings",
    "write_protocol_check",
]

MAX_DISTORTION: Final = 1.5
MIN_LESION_PX: Final = 4.0
MIN_TEST_CASES: Final = 9
SHOW_CASES: Final = 8
"""Case ids a message lists before '... and N more'."""


@dataclass(frozen=True)
class Finding:
    """One misfit: ``level`` (warning | error), the config key(s), the message, the cases."""

    level: str
    key: str
    message: str
    cases: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line form printed to the user."""
        return f"{self.level}: {self.key}: {self.message}{_case_list(self.cases)}"


def _case_list(cases: Sequence[str]) -> str:
    if not cases:
        return ""
    more = len(cases) - SHOW_CASES
    shown = ", ".join(cases[:SHOW_CASES]) + (f" ... and {more} more" if more > 0 else "")
    return f" (cases: {shown})"


def protocol_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The slice of a resolved config the check reads (the rule's params)."""
    t4 = config["tables"]["table4"]
    return {"size": config["data"]["size"], "frames": dict(config["frames"]),
            "table3_frames": list(config["tables"]["table3"]["frames"]),
            "mmg": {m: config["mmg"][m]["kernel"] for m in MODALITIES},
            "table4_kernels": list(t4["kernels"]),
            "table4_ceus_only": list(t4["ceus_only_kernels"]),
            "mismatched": bool(config["tables"]["table2"]["mismatched"])}


# ---- checks ----------------------------------------------------------------------------------


def _kernel_checks(key: str, kernel: int, modalities: Sequence[str], size: int,
                   cases: Sequence[Mapping[str, Any]]) -> list[Finding]:
    out = []
    for m in modalities:
        wide, flat = [], []
        for c in cases:
            kh, kw = kernel_axes(kernel, (c[f"{m}_h"], c[f"{m}_w"]), size)
            if math.sqrt(kh * kw) >= c[f"{m}_lesion_diameter_px"]:
                wide.append(c["case_id"])
            if min(kh, kw) == 1:
                flat.append(c["case_id"])
        if wide:
            d = sorted(c[f"{m}_lesion_diameter_px"] for c in cases)
            out.append(Finding("warning", key, (
                f"kernel {kernel} (original px) reaches the {m.upper()} lesion's equivalent "
                f"diameter at data.size {size} in {len(wide)} of {len(cases)} cases (lesion "
                f"diameters {d[0]:.1f}-{d[-1]:.1f} px at {size}): erosion leaves nothing "
                "inside, the margin is the dilated blob, not a band"), wide))
        if flat:
            out.append(Finding("warning", key, (
                f"kernel {kernel} (original px) is 1 px along an axis at data.size {size} on "
                f"{m.upper()} in {len(flat)} of {len(cases)} cases: no band along that axis"),
                flat))
    return out


def check_kernels(s: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every configured MMG kernel against the lesions it erodes."""
    out = []
    for m in MODALITIES:
        out += _kernel_checks(f"mmg.{m}.kernel", s["mmg"][m], MODALITIES, s["size"], cases)
    for k in s["table4_kernels"]:
        mods = ("ceus",) if k in s["table4_ceus_only"] else MODALITIES
        if k not in s["mmg"].values():
            out += _kernel_checks("tables.table4.kernels", k, mods, s["size"], cases)
    return out


def check_frames(s: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Each frame count T the run uses against every video's length."""
    fr, out = s["frames"], []
    for T in sorted({fr["T"], *s["table3_frames"]}):
        key = "frames.T" if fr["T"] == T else f"tables.table3.frames (T = {T})"
        if fr["strategy"] == "middle":
            need, how = (T - 1) * fr["step"] + 1, f"(T - 1) x frames.step {fr['step']} + 1"
        else:
            need, how = T, "T (keyframes)"
        short = sorted((c for c in cases if c["n_frames"] < need), key=lambda c: c["n_frames"])
        if short:
            out.append(Finding("warning", f"{key}, frames.step", (
                f"T = {T} needs {need} frames = {how}; {len(short)} of {len(cases)} videos are "
                f"shorter (shortest {short[0]['n_frames']}): their frames are clamped to the "
                "video and repeat (dataset.min_frames would reject them)"),
                [c["case_id"] for c in short]))
    return out


def check_geometry(s: Mapping[str, Any], cases: Sequence[Mapping[str, Any]],
                   measured_at: int) -> list[Finding]:
    """Aspect distortion and upsampling by the configured square working size; lesions too
    small at the size the fingerprint measured them (the run's, in the workflow)."""
    size, out = s["size"], []
    for m in MODALITIES:
        name = m.upper()
        bad = [c["case_id"] for c in cases
               if max(c[f"{m}_aspect"], 1 / c[f"{m}_aspect"]) > MAX_DISTORTION]
        if bad:
            out.append(Finding("warning", "data.size", (
                f"the square {size}x{size} working size distorts the {name} aspect ratio "
                f"(W/H) by more than {MAX_DISTORTION} in {len(bad)} of {len(cases)} cases"), bad))
        up = [c["case_id"] for c in cases if size > max(c[f"{m}_h"], c[f"{m}_w"])]
        if up:
            out.append(Finding("warning", "data.size", (
                f"{size} px is larger than both sides of the original {name} image in "
                f"{len(up)} of {len(cases)} cases: they are upsampled"), up))
        tiny = [c["case_id"] for c in cases if c[f"{m}_lesion_diameter_px"] < MIN_LESION_PX]
        if tiny:
            out.append(Finding("warning", "data.size", (
                f"the {name} lesion is below {MIN_LESION_PX:g} px equivalent diameter at "
                f"{measured_at} px in {len(tiny)} of {len(cases)} cases"), tiny))
    return out


def _split_findings(i: int, n_folds: int, fold: Mapping[str, Mapping[str, int]],
                    mismatched: bool) -> list[Finding]:
    where = f"fold {i}" if n_folds > 1 else "the hold-out split"
    out = []
    for subset in ("train", "val"):
        if fold[subset]["cases"] == 0:
            out.append(Finding("error", "split", f"{where} has no {subset} case"))
    test = fold["test"]["cases"]
    if test < MIN_TEST_CASES:
        out.append(Finding("warning", "split", (
            f"{where} tests {test} case(s), fewer than {MIN_TEST_CASES}: no paired comparison "
            "can be Holm-significant over 10 comparisons on them")))
    if mismatched:
        for subset, c in fold.items():
            if c["patients"] < 2 or c["cases"] < 2 * c["max_cases_per_patient"]:
                out.append(Finding("error", "tables.table2.mismatched, split", (
                    f"the {subset} subset of {where} ({c['cases']} cases, {c['patients']} "
                    "patients) cannot give each case another patient's margins")))
    return out


def check_splits(s: Mapping[str, Any], counts: Mapping[str, Any] | None) -> list[Finding]:
    """Empty subsets, tiny test folds, the mismatched control's derangement.

    ``counts``: :func:`iman.data.fingerprint.fingerprint_splits` (None: no split yet).
    """
    if not counts:
        return []
    folds = counts["folds"]
    return [f for i, fold in enumerate(folds)
            for f in _split_findings(i, len(folds), fold, s["mismatched"])]


def check_protocol(settings: Mapping[str, Any], fingerprint: Mapping[str, Any],
                   split_counts: Mapping[str, Any] | None = None) -> list[Finding]:
    """Every misfit of the config slice ``settings`` (:func:`protocol_settings`) with the data.

    Lesions are compared at the size the fingerprint measured them (in the workflow the
    config's ``data.size``: a change re-ingests); ``split_counts``:
    :func:`iman.data.fingerprint.fingerprint_splits`. Errors come after warnings.
    """
    cases = fingerprint["cases"]
    at_s = {**settings, "size": fingerprint["working_size"]}  # where the lesions were measured
    found = (check_kernels(at_s, cases) + check_frames(settings, cases)
             + check_geometry(settings, cases, fingerprint["working_size"])
             + check_splits(settings, split_counts))
    return sorted(found, key=lambda f: f.level == "error")


def format_findings(findings: Sequence[Finding]) -> str:
    """The warning list (and errors), one line each."""
    if not findings:
        return "protocol check: the config fits the data (no warning)"
    n_err = sum(f.level == "error" for f in findings)
    head = f"protocol check: {len(findings) - n_err} warning(s), {n_err} error(s)"
    return "\n".join([head, *(f"  - {f.line()}" for f in findings)])


_CHECKED: dict[str, tuple[str, bool]] = {}
_ANNOUNCED: set[str] = set()


def check_once(settings: Mapping[str, Any], fingerprint_file: Path, counts_file: Path,
               announce: bool = True) -> str:
    """:func:`check_protocol`, computed once per process and config: ConfigError when a
    finding is an error (every call), else the list's text, printed to stderr the first time
    ``announce`` is true.

    The workflow calls it from every training node's input function once the fingerprint and
    the split counts exist (checkpoint ``split_counts``), announcing for untrained nodes from
    the main process: an error stops the run before any training job, the list is printed
    once when something will train.
    """
    key = json.dumps([settings, str(fingerprint_file), str(counts_file)], sort_keys=True,
                     default=str)
    if key not in _CHECKED:
        findings = check_protocol(settings, json.loads(Path(fingerprint_file).read_text()),
                                  json.loads(Path(counts_file).read_text()))
        _CHECKED[key] = (format_findings(findings), any(f.level == "error" for f in findings))
    text, error = _CHECKED[key]
    if error:
        raise ConfigError(text)
    if announce and key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(text, file=sys.stderr)
    return text


def write_protocol_check(fingerprint_file: Path, counts_file: Path,
                         settings: Mapping[str, Any], out: Path) -> list[Finding]:
    """Check and write ``protocol_check.json`` (settings, cases per split subset, findings,
    ``n_errors`` / ``n_warnings``) for the record, the report and ``iman plan``.

    It never fails: preparing and inspecting the data (``snakemake data``) must work on any
    dataset that ingests, the authors' 2-case layout included. An error here is a config that
    cannot *train* on these data; the DAG-time check (:func:`check_once`, from every training
    node's input function) stops training with it before any job.
    """
    fp = json.loads(Path(fingerprint_file).read_text())
    counts = json.loads(Path(counts_file).read_text())
    findings = check_protocol(settings, fp, counts)
    print(format_findings(findings))
    n_errors = sum(f.level == "error" for f in findings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": dict(settings), "splits": counts,
                               "n_errors": n_errors, "n_warnings": len(findings) - n_errors,
                               "findings": [asdict(f) for f in findings]}, indent=1))
    return findings
