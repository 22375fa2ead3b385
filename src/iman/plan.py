"""``iman plan``: the dataset's fingerprint, the protocol check and suggested settings.

nnU-Net's fingerprint → plans step, as a suggestion only: the fingerprint is made by the
workflow (Snakemake target ``results/data/fingerprint.json``: phantom, ingest, fingerprint,
nothing that trains; up to date → nothing runs), the split too when it can be made, then
this module prints the fingerprint, the check of the config against it
(:mod:`iman.data.protocol`) and a YAML snippet of settings derived from it. Nothing is
applied: the user pastes what they want into their config.

Suggestions (each with its reason as a YAML comment):

* ``data.size``: the configured size, lowered to a multiple of 32 at or below the median
  shorter side of the smaller modality's images when the configured size would upsample
  most cases (the authors' 224-px US under the paper's 320).
* ``mmg`` and ``tables.table4.kernels``: the paper's grid 50/75/100/125 is 0.4/0.6/0.8/1.0
  of its largest kernel; here the largest kernel is :data:`KERNEL_FRACTION` (0.9) of the 10th
  percentile of the lesion equivalent diameters (original px) of the modality whose lesions
  are smaller, so it leaves a band (:mod:`iman.data.protocol`) in about 90 % of cases;
  ``mmg.us`` takes 0.6 of it (the paper's 75 of 125), ``mmg.ceus`` 0.8 (100 of 125).
* ``frames.step`` (middle strategy): the largest step up to the configured one with
  ``(T − 1)·step + 1`` within the shortest video; ``tables.table3.frames``: the configured
  frame counts that fit at that step (keyframes: ``T`` up to the shortest video).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml

from iman.config import PROJECT_ROOT
from iman.data.fingerprint import fingerprint_splits, read_fingerprint
from iman.data.protocol import check_protocol, format_findings, protocol_settings
from iman.names import MODALITIES
from iman.paths import Paths

__all__ = ["GRID_FRACTIONS", "KERNEL_FRACTION", "make_fingerprint", "plan_text", "run_plan",
           "suggest_settings"]

GRID_FRACTIONS: Final = (0.4, 0.6, 0.8, 1.0)
"""The paper's Table IV kernels 50/75/100/125 as fractions of the largest."""
KERNEL_FRACTION: Final = 0.9
"""Largest suggested kernel: this fraction of the 10th-percentile lesion diameter."""


def _snakemake(workdir: Path, target: str, configfiles: Sequence[str],
               overrides: Sequence[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(PROJECT_ROOT / "Snakefile"),
           "--directory", str(workdir), "--cores", "1", target]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    if overrides:
        cmd += ["--config", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def make_fingerprint(workdir: Path, results: str, configfiles: Sequence[str],
                     overrides: Sequence[str]) -> tuple[Path, str | None]:
    """Bring the fingerprint (and, when it can be made, the split) up to date.

    Returns the fingerprint's path and the split's failure (None when it was made); raises
    RuntimeError with Snakemake's output when the fingerprint cannot be made (bad data).
    """
    paths = Paths(results)
    run = _snakemake(workdir, paths.fingerprint, configfiles, overrides)
    if run.returncode != 0:
        raise RuntimeError((run.stdout + run.stderr)[-4000:])
    split = _snakemake(workdir, paths.splits, configfiles, overrides)
    problem = None
    if split.returncode != 0:
        log = workdir / paths.log("split")
        lines = (log.read_text() if log.exists() else split.stdout + split.stderr).splitlines()
        problem = next((ln.strip() for ln in reversed(lines) if ln.strip()),
                       "the split job failed")
    return workdir / paths.fingerprint, problem


# ---- suggestions -----------------------------------------------------------------------------


def _suggest_size(fp: Mapping[str, Any], size: int) -> tuple[int, str]:
    cases = fp["cases"]
    short = min(float(np.median([min(c[f"{m}_h"], c[f"{m}_w"]) for c in cases]))
                for m in MODALITIES)
    bound = max(32, int(short) // 32 * 32)
    if size <= short:
        return size, f"configured; no upsampling of the median case (shorter side {short:g})"
    return bound, (f"the median shorter side of the smaller modality is {short:g} px: "
                   f"{size} would upsample")


def _suggest_kernels(fp: Mapping[str, Any]) -> tuple[list[int], str]:
    cases = fp["cases"]
    p10 = {m: float(np.percentile([c[f"{m}_lesion_diameter_orig_px"] for c in cases], 10))
           for m in MODALITIES}
    m = min(p10, key=p10.get)
    top = KERNEL_FRACTION * p10[m]
    grid = sorted({max(1, round(f * top)) for f in GRID_FRACTIONS})
    return grid, (f"{KERNEL_FRACTION} x the 10th percentile of the {m.upper()} lesion "
                  f"diameters ({p10[m]:.1f} original px) x {list(GRID_FRACTIONS)}")


def _suggest_frames(fp: Mapping[str, Any], fr: Mapping[str, Any],
                    table3: Sequence[int]) -> dict[str, Any]:
    shortest = int(fp["ceus_frames"]["min"])
    T = fr["T"]
    if fr["strategy"] != "middle":
        fits = [t for t in table3 if t <= shortest]
        return {"T": T if shortest >= T else max([t for t in (1, 3, 5, 7, 9) if t <= shortest]),
                "step": fr["step"], "table3": fits, "shortest": shortest}
    step = fr["step"]
    while step > 1 and (T - 1) * step + 1 > shortest:
        step -= 1
    while (T - 1) * step + 1 > shortest and T > 1:
        T -= 2
    fits = [t for t in table3 if (t - 1) * step + 1 <= shortest]
    return {"T": T, "step": step, "table3": fits, "shortest": shortest}


def suggest_settings(fp: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Settings derived from the fingerprint, each with its reason (``why``)."""
    size, size_why = _suggest_size(fp, config["data"]["size"])
    grid, grid_why = _suggest_kernels(fp)
    frames = _suggest_frames(fp, config["frames"], config["tables"]["table3"]["frames"])
    top = grid[-1]
    return {"size": size, "size_why": size_why, "kernels": grid, "kernels_why": grid_why,
            "mmg_us": max(1, round(0.6 * top)), "mmg_ceus": max(1, round(0.8 * top)),
            "ceus_only": [top] if config["tables"]["table4"]["ceus_only_kernels"] else [],
            **{f"frames_{k}": v for k, v in frames.items()}}


def _snippet(s: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    mmg = config["mmg"]
    T, step, need = s["frames_T"], s["frames_step"], (s["frames_T"] - 1) * s["frames_step"] + 1
    lines = [
        "# suggested settings for this dataset (iman plan): nothing is applied; paste what",
        "# you want into your config file",
        "data:",
        f"  size: {s['size']}  # {s['size_why']}",
        "frames:",
        f"  T: {T}",
        f"  step: {step}  # (T - 1) x step + 1 = {need} <= shortest video "
        f"({s['frames_shortest']} frames)",
        "mmg:  # kernels in original px: " + s["kernels_why"],
        f"  us: {{kernel: {s['mmg_us']}, filter: {mmg['us']['filter']}}}  # 0.6 of the "
        "largest kernel (the paper's 75 of 125)",
        f"  ceus: {{kernel: {s['mmg_ceus']}, filter: {mmg['ceus']['filter']}}}  # 0.8 "
        "(100 of 125)",
        "tables:",
        f"  table3: {{frames: {s['frames_table3']}}}  # the frame counts that fit",
        f"  table4: {{kernels: {s['kernels']}, ceus_only_kernels: {s['ceus_only']}}}",
    ]
    return "\n".join(lines) + "\n"


def _round(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return float(f"{obj:.4g}")
    return obj


def plan_text(fp: Mapping[str, Any], config: Mapping[str, Any],
              splits: Mapping[str, Any] | None, split_problem: str | None = None) -> str:
    """The fingerprint (without its per-case rows), the check and the suggested snippet."""
    summary = {k: v for k, v in fp.items() if k != "cases"}
    counts = fingerprint_splits(fp, splits) if splits else None
    parts = ["# dataset fingerprint (results/data/fingerprint.json; per-case rows there)",
             yaml.safe_dump(_round(summary), sort_keys=False, default_flow_style=None,
                            width=100).rstrip()]
    if counts:
        parts += ["# cases per split subset (splits.json)",
                  yaml.safe_dump({"splits": counts}, sort_keys=False, default_flow_style=None,
                                 width=100).rstrip()]
    if split_problem:
        parts.append(f"# the split cannot be made: {split_problem}")
    findings = check_protocol(protocol_settings(config), fp, counts)
    parts += ["", "\n".join(f"# {ln}" for ln in format_findings(findings).splitlines()), "",
              _snippet(suggest_settings(fp, config), config)]
    return "\n".join(parts)


def run_plan(workdir: Path, configfiles: Sequence[str], overrides: Sequence[str]) -> str:
    """``iman plan``: make the fingerprint (and split) in ``workdir``, return the plan text."""
    from snakemake.cli import parse_config

    from iman.config import DEMO_CONFIG, resolve_config

    config = resolve_config(list(configfiles) or [DEMO_CONFIG], parse_config(list(overrides)))
    fp_file, problem = make_fingerprint(workdir, config["results"], configfiles, overrides)
    splits_file = workdir / Paths(config["results"]).splits
    splits = None if problem else json.loads(splits_file.read_text())
    return plan_text(read_fingerprint(fp_file), config, splits, problem)
