"""What produced a result: code version, package versions, host and device.

Recorded in every checkpoint, every node's ``provenance.json``, every experiment summary and
the run's ``results/provenance.json`` (shown in the report), so a table cell can be traced
months later. Reads package metadata only (no heavy imports).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "environment", "git_state", "record_run"]

PACKAGES = ("iman", "torch", "torchvision", "segmentation-models-pytorch", "timm", "snakemake",
            "numpy", "opencv-python-headless")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Commit and dirty flag when ``root`` is a git checkout, else ``{"commit": None}``."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD") if (root / ".git").exists() else None
    if commit is None:
        return {"commit": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@cache
def environment() -> dict[str, Any]:
    """Git state, Python and package versions, host (cached per process)."""
    return {
        "git": git_state(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "host": platform.node(),
        "platform": platform.platform(),
    }


def record_run(config: Mapping[str, Any], config_out: Path, provenance_out: Path) -> None:
    """The resolved config (as ``iman config`` prints it) and the run's environment."""
    from iman.config import dump_config

    config_out.write_text(dump_config(config))
    provenance_out.write_text(json.dumps({"config": config, **environment()}, indent=1))
