"""Pretrained weight files: the catalogue, the local cache, fetching, checking, resolving.

The paper protocol (``model.pretrained: true``, the schema default) starts every method that
has a public ImageNet file — the smp frameworks' ResNet-50, TransUNet's R50+ViT-B/16,
Swin-Unet's Swin-T, GG-Net's ResNeXt-101 — from it; the rest train from scratch, as in their
own papers. The files live in one cache (:func:`cache_dir`: ``$IMAN_WEIGHTS_DIR``, default
``$XDG_CACHE_HOME/iman/weights``). ``iman weights fetch`` fills it on a machine with
internet (torch.hub's download: a temporary file, the checksum, then the move); the
workflow never downloads: a run whose files are missing stops at start-up
(:func:`check_available`) naming them and the fetch command.

A catalogue entry's ``sha256`` is the full digest, the prefix the origin puts in the file
name, or null; the full digest of every fetched file is recorded in the cache's
``weights.json`` and checked by ``iman weights list --check``. ``IMAN_WEIGHTS_CATALOG``
names a replacement catalogue (a site mirror; the tests' local server).

Importing this module does not import torch.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CATALOG_PATH", "WeightFile", "WeightsError", "cache_dir", "catalog",
           "check_available", "expected_file", "fetch", "resolve", "sha256sum"]

CATALOG_PATH = Path(__file__).parent / "resources" / "weights.yaml"
MANIFEST = "weights.json"


class WeightsError(RuntimeError):
    """Weights missing, unreachable or corrupt; the message says what to do."""


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file of the catalogue."""

    id: str
    filename: str
    url: str
    sha256: str | None
    size_mb: float | None
    origin: str
    fills: str
    format: str
    models: tuple[str, ...]  # "method/variant"

    @property
    def digest_kind(self) -> str:
        """How much of the SHA-256 the catalogue knows: full, prefix or unknown."""
        if not self.sha256:
            return "unknown"
        return "full" if len(self.sha256) == 64 else "prefix"


def catalog() -> dict[str, WeightFile]:
    """The catalogue (``$IMAN_WEIGHTS_CATALOG`` or the packaged ``weights.yaml``).

    Parsed once per file version: the workflow resolves every training job's weights at
    DAG build, thousands of calls for the paper sweep.
    """
    path = Path(os.environ.get("IMAN_WEIGHTS_CATALOG") or CATALOG_PATH)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise WeightsError(f"weights catalogue {path} is unreadable: {err}") from None
    return dict(_parse_catalog(path, mtime))


@functools.lru_cache(maxsize=8)
def _parse_catalog(path: Path, mtime_ns: int) -> dict[str, WeightFile]:
    """The catalogue file at one modification time (``mtime_ns`` keys the cache)."""
    try:
        raw = yaml.safe_load(path.read_text())["files"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as err:
        raise WeightsError(f"weights catalogue {path} is unreadable: {err}") from None
    return {key: WeightFile(key, e["filename"], e["url"], e.get("sha256"), e.get("size_mb"),
                            e.get("origin", ""), e.get("fills", ""), e.get("format", ""),
                            tuple(e.get("models", ())))
            for key, e in raw.items()}


def cache_dir() -> Path:
    """``$IMAN_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/iman/weights`` (``~/.cache``)."""
    if os.environ.get("IMAN_WEIGHTS_DIR"):
        return Path(os.environ["IMAN_WEIGHTS_DIR"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return (base / "iman" / "weights").resolve()


def expected_file(method: str, variant: str) -> WeightFile | None:
    """The catalogue file a method/variant starts from under the paper protocol, if any."""
    for f in catalog().values():
        if f"{method}/{variant}" in f.models:
            return f
    return None


@dataclass(frozen=True)
class Resolved:
    """How one method/variant is initialised: the file (or None) and the input normalisation."""

    path: str | None
    norm: str  # "imagenet" (grey → RGB, ImageNet statistics) or "grey" (the demo's own)
    source: str  # "config" (model.weights), "cache" or "random"


def resolve(model_cfg: Mapping[str, Any], method: str, variant: str) -> Resolved:
    """The initialisation of one method/variant under the config's ``model`` section.

    ``model.weights`` may name a file per method (it wins); otherwise, with
    ``model.pretrained``, a method that has a catalogue file starts from the cached copy.
    Normalisation follows the weights: ImageNet when a catalogue (ImageNet) file is used.
    """
    explicit = model_cfg.get("weights")
    explicit = explicit if isinstance(explicit, Mapping) else {}
    entry = expected_file(method, variant)
    if explicit.get(method) not in (None, "", "auto"):
        path = str(Path(explicit[method]).expanduser().resolve())
        return Resolved(path, "imagenet" if entry else "grey", "config")
    if entry is not None and model_cfg.get("pretrained", True):
        return Resolved(str(cache_dir() / entry.filename), "imagenet", "cache")
    return Resolved(None, "grey", "random")


def check_available(model_cfg: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """Raise one :class:`WeightsError` listing every weight file the run needs but lacks."""
    missing_cache: dict[str, list[str]] = {}
    missing_files: list[str] = []
    for method, variant in sorted(set(pairs)):
        r = resolve(model_cfg, method, variant)
        if r.path is None or Path(r.path).is_file():
            continue
        if r.source == "cache":
            missing_cache.setdefault(r.path, []).append(f"{method}/{variant}")
        else:
            missing_files.append(f"model.weights.{method}: {r.path} does not exist")
    if not missing_cache and not missing_files:
        return
    lines = ["pretrained weights are missing (model.pretrained: true, the paper protocol):"]
    methods = sorted({p.removesuffix("/paper") for users in missing_cache.values() for p in users})
    for path, users in sorted(missing_cache.items()):
        lines.append(f"  - {path} (for {', '.join(users)})")
    lines += [f"  - {m}" for m in missing_files]
    if missing_cache:
        lines += [f"Fetch them on a machine with internet: iman weights fetch {' '.join(methods)}",
                  f"(cache: {cache_dir()}; set IMAN_WEIGHTS_DIR to use another), or put the "
                  "files there by hand (`iman weights list` gives each origin);",
                  "or train from random initialisation on purpose: --config "
                  "'model={\"pretrained\": false}' (the tables then say so)."]
    raise WeightsError("\n".join(lines))


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """The cache's record of fetched files: filename → digest, size, url, time."""
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(directory: Path, f: WeightFile, digest: str, size: int) -> None:
    manifest = read_manifest(directory)
    manifest[f.filename] = {"id": f.id, "sha256": digest, "bytes": size, "url": f.url,
                            "fetched": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(directory / MANIFEST)


def check_file(f: WeightFile, path: Path, manifest: Mapping[str, Any]) -> str | None:
    """A problem with a cached file (checksum against catalogue and record), or None."""
    digest = sha256sum(path)
    if f.sha256 and not digest.startswith(f.sha256):
        return f"{path}: SHA-256 {digest} does not match the catalogue's {f.sha256}"
    recorded = manifest.get(f.filename, {}).get("sha256")
    if recorded and recorded != digest:
        return f"{path}: SHA-256 {digest} differs from the one recorded at fetch ({recorded})"
    return None


def files_for(targets: Sequence[str], every: bool = False) -> list[WeightFile]:
    """Catalogue files for ``METHOD`` (its paper variant) or ``METHOD/VARIANT`` targets;
    none named: the paper variants' files (``every``: the whole catalogue)."""
    files = list(catalog().values())
    if every:
        return files
    if not targets:
        return [f for f in files if any(m.endswith("/paper") for m in f.models)]
    from iman.models import all_entries

    registered = {e.name for e in all_entries()}
    wanted = [t if "/" in t else f"{t}/paper" for t in targets]
    problems = [f"unknown method {t.split('/')[0]!r}" for t in wanted
                if t.split("/")[0] not in registered]
    chosen = [f for f in files if set(f.models) & set(wanted)]
    problems += [f"{t}: no pretrained file in the catalogue (trained from scratch)"
                 for t in wanted if t.split("/")[0] in registered
                 and not any(t in f.models for f in files)]
    if problems:
        raise WeightsError("; ".join(problems) + f". Registered methods: {sorted(registered)}")
    return chosen


def fetch(files: Sequence[WeightFile], directory: Path | None = None,
          progress: bool = True) -> list[tuple[WeightFile, Path, str]]:
    """Download each file into the cache (unless a valid copy is there); verify; record.

    Returns (file, path, "cached"|"fetched"). A checksum mismatch leaves nothing in the
    cache. Every file is tried; the failures are raised together as one
    :class:`WeightsError` that gives the manual route.
    """
    from urllib.error import URLError

    from torch.hub import download_url_to_file

    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    done, problems, unreachable = [], [], []
    for f in files:
        path = directory / f.filename
        manifest = read_manifest(directory)
        if path.is_file() and check_file(f, path, manifest) is None:
            if f.filename not in manifest:
                _record(directory, f, sha256sum(path), path.stat().st_size)
            done.append((f, path, "cached"))
            continue
        try:
            download_url_to_file(f.url, str(path), hash_prefix=f.sha256 or None,
                                 progress=progress)
        except (URLError, OSError, ValueError) as err:
            path.unlink(missing_ok=True)
            problems.append(f"{f.filename}: cannot download {f.url}: "
                            f"{getattr(err, 'reason', err)}")
            unreachable.append((f, path))
            continue
        except RuntimeError as err:  # torch.hub: "invalid hash value"
            path.unlink(missing_ok=True)
            problems.append(f"{f.filename} from {f.url} failed its checksum ({err}); nothing "
                            f"was written to {directory}")
            continue
        _record(directory, f, sha256sum(path), path.stat().st_size)
        done.append((f, path, "fetched"))
    if problems:
        text = "\n  - ".join(["could not fetch every file:", *problems])
        if unreachable:
            text += ("\nWithout network here: run `iman weights fetch` on a machine with "
                     "internet and copy the cache, or download each file yourself and put it "
                     "at its place:\n" + "\n".join(
                         f"    {f.url}\n      -> {p}" for f, p in unreachable)
                     + "\nthen check it: iman weights verify FILE --method METHOD")
        raise WeightsError(text)
    return done


def verify(path: Path, method: str, variant: str = "paper") -> Any:
    """Load ``path`` into the method's model; the :class:`~iman.models.blocks.LoadReport`.

    The model takes ImageNet (RGB) input, as under the paper protocol; a method without a
    pretrained loader is checked as a whole-model state dict.
    """
    from iman.models import build_model, get_entry
    from iman.models.blocks import load_report, read_state_file

    entry = get_entry(method)
    size = int(entry.paper_input.get("img_size", 224))
    channels = {m: 3 for m in entry.consumed(entry.modalities[0])}
    model = build_model(method, channels, size, variant)
    if entry.load_weights is not None:
        return entry.load_weights(model, str(path))
    return load_report(model, read_state_file(path), str(path), f"{method} (whole model)")
