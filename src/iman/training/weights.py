"""Pretrained weight files: the catalogue, the local cache, fetching, checking, resolving.

The paper protocol (``model.pretrained: true``, the schema default) starts every method that
has a public ImageNet file — the smp frameworks' ResNet-50, TransUNet's R50+ViT-B/16,
Swin-Unet's Swin-T, GG-Net's ResNeXt-101 — from it; the rest train from scratch, as in their
own papers. The files live in one cache (:func:`cache_dir`: ``$IMAN_WEIGHTS_DIR``, default
``$XDG_CACHE_HOME/iman/weights``). ``iman weights fetch`` fills it on a machine with
internet, trying each file's sources in order; the workflow never downloads.

Each catalogue file lists ordered *sources* (the same weights at several places, possibly in
several layouts: the official npz, timm's release), its input normalisation (the statistics
it was pretrained with) and the methods it starts. A source's ``sha256`` is the full digest,
the prefix its origin puts in the file name, or null; the full digest of every fetched file
is recorded in the cache's ``weights.json``. Training jobs are keyed on that content digest
(:func:`weights_key`), not on the file's path, so moving the cache retrains nothing.

Faults are caught once, where weights are needed (the first training job the DAG holds,
:func:`check_once`): every missing, truncated, non-weight (an HTML page), wrong-format,
wrong-network or wrong-digest file is listed at once, before any job runs. The content check
(:func:`content_problem`, :mod:`iman.training.weight_content`) reads each file's index, not
its data: the byte ranges it promises, and its tensor names and shapes against the
catalogue's ``expect:`` signature of that file. ``IMAN_WEIGHTS_CATALOG`` names a replacement
catalogue (a site mirror; the tests' local server).

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

from iman.errors import UserError
from iman.training.weight_content import FORMATS, ContentError, Signature, read_shapes, sniff

__all__ = ["CATALOG_PATH", "Norm", "Resolved", "Source", "WeightFile", "WeightsError",
           "cache_dir", "catalog", "check_available", "check_once", "content_problem",
           "expected_file", "fetch", "file_problem", "locate", "record_origin", "resolve",
           "sha256sum", "weights_key"]

CATALOG_PATH = Path(__file__).parents[1] / "resources" / "weights.yaml"
MANIFEST = "weights.json"
VERIFY_HINT = "check it with: iman weights verify {path} --method {method}"
LAYOUTS = ("torch", "npz", "timm", "safetensors")


class WeightsError(UserError, RuntimeError):
    """Weights missing, unreachable or corrupt; the message says what to do."""


@dataclass(frozen=True)
class Norm:
    """Input normalisation a file was pretrained with: grey levels scaled to ``range``,
    each repeated to RGB, then ``(v − mean) / std`` per channel."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    range: tuple[float, float] = (0.0, 1.0)

    @property
    def label(self) -> str:
        """The name of these statistics in :data:`iman.data.dataset.NORMS` (or ``custom``)."""
        from iman.data.dataset import NORMS

        for name, n in NORMS.items():
            if n["rgb"] and tuple(n["mean"]) == self.mean and tuple(n["std"]) == self.std:
                return name
        return "custom"

    def text(self) -> str:
        """One line for ``iman weights list``."""
        fmt = lambda v: "(" + ", ".join(f"{x:g}" for x in v) + ")"  # noqa: E731
        lo = (self.range[0] - self.mean[0]) / self.std[0]
        hi = (self.range[1] - self.mean[0]) / self.std[0]
        return (f"{self.label}: grey -> RGB in [{self.range[0]:g}, {self.range[1]:g}], "
                f"mean {fmt(self.mean)}, std {fmt(self.std)} (input about [{lo:.2f}, "
                f"{hi:.2f}])")


@dataclass(frozen=True)
class Source:
    """One place a catalogue file can be had, in one layout."""

    url: str
    filename: str
    sha256: str | None
    layout: str
    size_mb: float | None
    note: str = ""
    expect: Signature | None = None  # tensor count and sentinel shapes (catalogue `expect:`)

    @property
    def digest_kind(self) -> str:
        """How much of the SHA-256 the catalogue knows: full, prefix or unknown."""
        if not self.sha256:
            return "unknown"
        return "full" if len(self.sha256) == 64 else "prefix"


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file of the catalogue: its sources in order of preference."""

    id: str
    sources: tuple[Source, ...]
    norm: Norm
    origin: str
    fills: str
    models: tuple[str, ...]  # "method/variant"

    @property
    def filename(self) -> str:
        """The first (preferred) source's file name."""
        return self.sources[0].filename

    @property
    def url(self) -> str:
        """The first source's URL."""
        return self.sources[0].url

    @property
    def sha256(self) -> str | None:
        """The first source's digest (full, prefix or None)."""
        return self.sources[0].sha256

    @property
    def digest_kind(self) -> str:
        """How much of the first source's SHA-256 the catalogue knows."""
        return self.sources[0].digest_kind


def catalog_path() -> Path:
    """``$IMAN_WEIGHTS_CATALOG`` or the packaged ``weights.yaml``."""
    return Path(os.environ.get("IMAN_WEIGHTS_CATALOG") or CATALOG_PATH)


def catalog() -> dict[str, WeightFile]:
    """The catalogue (``$IMAN_WEIGHTS_CATALOG`` or the packaged ``weights.yaml``).

    Parsed once per file version: the workflow resolves every training job's weights at
    DAG build, thousands of calls for the paper sweep.
    """
    path = catalog_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise WeightsError(f"weights catalogue {path} is unreadable: {err}") from None
    return dict(_parse_catalog(path, mtime))


def _floats(value: Any, n: int, what: str) -> tuple[float, ...]:
    vals = tuple(float(v) for v in (value if isinstance(value, list | tuple) else [value] * n))
    if len(vals) != n:
        raise ValueError(f"{what} needs {n} numbers, got {value!r}")
    return vals


def _parse_entry(key: str, e: Any) -> WeightFile:
    """One catalogue entry; a ``ValueError`` names the field that is wrong."""
    if not isinstance(e, Mapping):
        raise ValueError("not a mapping")
    raw = e.get("sources")
    if raw is None:  # the one-source form: url, filename, sha256 at the top
        raw = [{k: e[k] for k in ("url", "filename", "sha256", "layout", "size_mb")
                if k in e}]
    if not isinstance(raw, list) or not raw:
        raise ValueError("'sources' must be a non-empty list")
    sources = []
    for i, s in enumerate(raw, 1):
        if not isinstance(s, Mapping):
            raise ValueError(f"source {i} is not a mapping")
        for field in ("url", "filename"):
            if not isinstance(s.get(field), str) or not s[field]:
                raise ValueError(f"source {i} has no '{field}'")
        layout = s.get("layout", "npz" if s["filename"].endswith(".npz") else "torch")
        if layout not in LAYOUTS:
            raise ValueError(f"source {i}: layout {layout!r} is not one of {LAYOUTS}")
        sha = s.get("sha256")
        if sha is not None and (not isinstance(sha, str)
                                or any(c not in "0123456789abcdef" for c in sha.lower())):
            raise ValueError(f"source {i}: sha256 {sha!r} is not hex")
        size = s.get("size_mb", e.get("size_mb"))
        expect = s.get("expect", e.get("expect"))
        try:
            signature = Signature.parse(expect) if expect is not None else None
        except (ValueError, TypeError) as err:
            raise ValueError(f"source {i}: {err}") from None
        sources.append(Source(s["url"], s["filename"], sha.lower() if sha else None, layout,
                              float(size) if size is not None else None, s.get("note", ""),
                              signature))
    models = e.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) and "/" in m
                                               for m in models):
        raise ValueError("'models' must be a list of METHOD/VARIANT")
    n = e.get("norm", "imagenet")
    if isinstance(n, str):
        from iman.data.dataset import NORMS

        if n not in NORMS or not NORMS[n]["rgb"]:
            raise ValueError(f"norm {n!r} is not a pretrained normalisation")
        n = NORMS[n]
    if not isinstance(n, Mapping) or "mean" not in n or "std" not in n:
        raise ValueError("'norm' needs mean and std (3 numbers each)")
    norm = Norm(_floats(n["mean"], 3, "norm.mean"), _floats(n["std"], 3, "norm.std"),
                _floats(n.get("range", (0.0, 1.0)), 2, "norm.range"))
    return WeightFile(key, tuple(sources), norm, str(e.get("origin", "")),
                      str(e.get("fills", "")), tuple(models))


@functools.lru_cache(maxsize=8)
def _parse_catalog(path: Path, mtime_ns: int) -> dict[str, WeightFile]:
    """The catalogue file at one modification time (``mtime_ns`` keys the cache)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise WeightsError(f"weights catalogue {path} is unreadable: {err}") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("files"), Mapping):
        raise WeightsError(f"weights catalogue {path}: no 'files:' mapping at the top "
                           f"(the format of {CATALOG_PATH})")
    out, problems = {}, []
    for key, e in raw["files"].items():
        try:
            out[key] = _parse_entry(key, e)
        except (ValueError, TypeError, KeyError) as err:
            problems.append(f"  - {key}: {err}")
    if problems:
        raise WeightsError("\n".join([f"weights catalogue {path} has malformed entries "
                                      f"(the format of {CATALOG_PATH}):", *problems]))
    return out


def cache_dir() -> Path:
    """``$IMAN_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/iman/weights`` (``~/.cache``)."""
    if os.environ.get("IMAN_WEIGHTS_DIR"):
        return Path(os.environ["IMAN_WEIGHTS_DIR"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return (base / "iman" / "weights").resolve()


def expected_file(method: str, variant: str) -> WeightFile | None:
    """The catalogue file a method/variant starts from under the paper protocol, if any.

    A site catalogue (``IMAN_WEIGHTS_CATALOG``) that lacks a method/variant the packaged
    catalogue starts from a file is an error, not a silent switch to random init.
    """
    for f in catalog().values():
        if f"{method}/{variant}" in f.models:
            return f
    if catalog_path() != CATALOG_PATH:
        packaged = _parse_catalog(CATALOG_PATH, CATALOG_PATH.stat().st_mtime_ns)
        for f in packaged.values():
            if f"{method}/{variant}" in f.models:
                raise WeightsError(
                    f"the site weights catalogue {catalog_path()} (IMAN_WEIGHTS_CATALOG) has no "
                    f"entry for {method}/{variant}, which the paper protocol starts from "
                    f"{f.filename} ({f.id} in {CATALOG_PATH}). Add that entry to the site "
                    "catalogue, or train from random initialisation on purpose: --config "
                    "'model={\"pretrained\": false}'.")
    return None


@dataclass(frozen=True)
class Resolved:
    """How one method/variant is initialised: the file (or None) and the input normalisation."""

    path: str | None
    norm: str | dict[str, Any]  # a NORMS label ("grey", "imagenet", "inception") or mean/std
    source: str  # "config" (model.weights), "cache" or "random"
    entry: WeightFile | None = None

    @property
    def rgb(self) -> bool:
        """True when every grey channel is repeated to RGB (pretrained input)."""
        return self.norm != "grey"


def _norm_value(norm: Norm) -> str | dict[str, Any]:
    label = norm.label
    return label if label != "custom" else {"mean": list(norm.mean), "std": list(norm.std),
                                            "range": list(norm.range)}


def cached_source(f: WeightFile, directory: Path | None = None) -> tuple[Source, Path]:
    """The first source whose file is in the cache (else the first source) and its path."""
    directory = directory or cache_dir()
    for s in f.sources:
        if (directory / s.filename).is_file():
            return s, directory / s.filename
    return f.sources[0], directory / f.sources[0].filename


def resolve(model_cfg: Mapping[str, Any], method: str, variant: str) -> Resolved:
    """The initialisation of one method/variant under the config's ``model`` section.

    ``model.weights`` may name a file per method (it wins); otherwise, with
    ``model.pretrained``, a method that has a catalogue file starts from the cached copy
    (the first of its sources in the cache). Normalisation follows the file: the catalogue
    entry's mean/std; ``grey`` for random init and for a whole-model file of a method
    without a catalogue entry.
    """
    explicit = model_cfg.get("weights")
    explicit = explicit if isinstance(explicit, Mapping) else {}
    pretrained = model_cfg.get("pretrained", True)
    named = explicit.get(method) not in (None, "", "auto")
    entry = expected_file(method, variant) if (pretrained or named) else None
    if named:
        path = str(Path(explicit[method]).expanduser().resolve())
        return Resolved(path, _norm_value(entry.norm) if entry else "grey", "config", entry)
    if entry is not None and pretrained:
        _, path = cached_source(entry)
        return Resolved(str(path), _norm_value(entry.norm), "cache", entry)
    return Resolved(None, "grey", "random")


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _digest_at(path: str, size: int, mtime_ns: int) -> str:
    return sha256sum(Path(path))


def file_digest(path: Path, manifest: Mapping[str, Any] | None = None) -> str:
    """SHA-256 of ``path``, hashed once per (size, mtime) in a process; the cache's record
    is trusted when its size and mtime match (a start-up check does not re-read 800 MB)."""
    st = path.stat()
    rec = (manifest or {}).get(path.name, {})
    if rec.get("sha256") and rec.get("bytes") == st.st_size and rec.get("mtime_ns") == \
            st.st_mtime_ns:
        return rec["sha256"]
    return _digest_at(str(path), st.st_size, st.st_mtime_ns)


def read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """The cache's record of fetched files: filename → digest, size, url, time."""
    path = directory / MANIFEST
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def record_origin(record: Mapping[str, Any]) -> str:
    """``fetched`` (from the record's ``url``) or ``placed by hand``."""
    return str(record.get("origin") or ("fetched" if record.get("url") else "placed by hand"))


def _record(directory: Path, f: WeightFile, source: Source, path: Path, digest: str,
            url: str | None) -> None:
    """Record a cache file's digest: fetched from ``url``, or placed by hand (``url`` None:
    no source is claimed for a file this process did not download)."""
    manifest = read_manifest(directory)
    st = path.stat()
    rec = {"id": f.id, "sha256": digest, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
           "layout": source.layout, "origin": "fetched" if url else "placed by hand",
           "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    manifest[path.name] = {**rec, "url": url} if url else rec
    tmp = directory / f".{MANIFEST}.tmp"
    try:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tmp.replace(directory / MANIFEST)
    except OSError:  # a read-only shared cache: nothing recorded, nothing lost
        tmp.unlink(missing_ok=True)


_NOT_WEIGHTS = {
    "empty": "is empty",
    "html": ("is a web page (HTML/XML), not a weight file: a download page or an error saved "
             "instead of the file (Google Drive links do this)"),
    "zip": "is a zip archive without numpy arrays or a torch pickle, not a weight file",
    "unknown": "is neither a torch, npz nor safetensors file",
}


def content_problem(path: Path, source: Source | None = None) -> str | None:
    """What the file's content shows is wrong, or None: not a weight file, not the format
    of the source's layout, bytes missing (:mod:`iman.training.weight_content`), or tensors
    that are not the source's network (its ``expect`` signature). Cached per file version."""
    st = path.stat()
    layout = source.layout if source else None
    return _content_problem(str(path), st.st_size, st.st_mtime_ns, layout,
                            source.expect if source else None)


@functools.lru_cache(maxsize=64)
def _content_problem(path: str, size: int, mtime_ns: int, layout: str | None,
                     expect: Signature | None) -> str | None:
    try:
        fmt = sniff(Path(path))
        if fmt in _NOT_WEIGHTS:
            return _NOT_WEIGHTS[fmt]
        if layout and fmt not in FORMATS[layout]:
            return (f"is in {fmt} format, not {' or '.join(FORMATS[layout])} (the catalogue's "
                    f"{layout} layout): another file under this name")
        shapes = read_shapes(Path(path), fmt)
    except ContentError as err:
        return str(err)
    except OSError as err:
        return f"cannot be read ({err})"
    problems = expect.problems(shapes) if expect else []
    if not problems:
        return None
    like = [f.id for f in catalog().values() if any(
        s.expect and s.expect != expect and not s.expect.problems(shapes) for s in f.sources)]
    return ("holds another network's tensors: " + "; ".join(problems)
            + (f" (it looks like the {' or '.join(like)} file)" if like else ""))


def file_problem(path: Path, source: Source | None = None,
                 manifest: Mapping[str, Any] | None = None) -> str | None:
    """What is wrong with a weight file (missing, truncated, not a weight file, wrong
    digest), or None. Size and digest are checked where the catalogue or record knows them."""
    if not path.is_file():
        return "is missing"
    problem = content_problem(path, source)
    if problem:
        return problem
    size = path.stat().st_size
    if source is not None and source.size_mb and size < 0.8 * source.size_mb * 1e6:
        return (f"is truncated: {size / 1e6:.1f} MB, the catalogue expects about "
                f"{source.size_mb:g} MB (an interrupted download?)")
    manifest = manifest or {}
    recorded = manifest.get(path.name, {}).get("sha256")
    if source is None or not (source.sha256 or recorded):
        return None
    digest = file_digest(path, manifest)
    if source.sha256 and not digest.startswith(source.sha256):
        kind = "digest" if source.digest_kind == "full" else "digest prefix (from its name)"
        return (f"has SHA-256 {digest}, not the catalogue's {kind} {source.sha256}: another "
                "file under this name")
    if recorded and recorded != digest:
        return f"has SHA-256 {digest}, not the one recorded when it was fetched ({recorded})"
    return None


def check_file(f: WeightFile, path: Path, manifest: Mapping[str, Any]) -> str | None:
    """A problem with a cached file of ``f`` (re-hashed), prefixed with its path, or None."""
    source = next((s for s in f.sources if s.filename == path.name), f.sources[0])
    fresh = {k: {kk: vv for kk, vv in v.items() if kk != "mtime_ns"}
             for k, v in manifest.items()}  # force a re-hash
    problem = file_problem(path, source, fresh)
    return f"{path} {problem}" if problem else None


def check_available(model_cfg: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """Raise one :class:`WeightsError` listing every weight file the run needs but lacks
    or that is broken (missing, truncated, a web page, wrong digest)."""
    missing: dict[str, list[str]] = {}
    broken: dict[str, tuple[str, list[str]]] = {}
    named: list[str] = []
    manifests: dict[Path, dict[str, Any]] = {}
    for method, variant in sorted(set(pairs)):
        r = resolve(model_cfg, method, variant)
        if r.path is None:
            continue
        path = Path(r.path)
        user = f"{method}/{variant}"
        if r.source == "config":
            problem = file_problem(path)
            if problem:
                named.append(f"  - model.weights.{method}: {path} {problem}")
            continue
        assert r.entry is not None
        source = next(s for s in r.entry.sources if s.filename == path.name)
        manifest = manifests.setdefault(path.parent, read_manifest(path.parent))
        problem = file_problem(path, source, manifest)
        if problem == "is missing":
            missing.setdefault(str(path), []).append(user)
        elif problem:
            broken.setdefault(str(path), (problem, []))[1].append(user)
    if not missing and not broken and not named:
        return
    lines = ["pretrained weights are missing or broken (model.pretrained: true, the paper "
             "protocol); no job was started:"]
    for path, users in sorted(missing.items()):
        lines.append(f"  - {path} is missing (for {', '.join(users)})")
    for path, (problem, users) in sorted(broken.items()):
        lines.append(f"  - {path} {problem} (for {', '.join(users)})")
    lines += named
    if missing:
        methods = sorted({u.removesuffix("/paper") for us in missing.values() for u in us})
        lines += [f"Fetch them on a machine with internet: iman weights fetch "
                  f"{' '.join(methods)}",
                  f"(cache: {cache_dir()}; set IMAN_WEIGHTS_DIR to use another), or put the "
                  "files there by hand (`iman weights list` gives each file's sources);"]
    if broken:
        methods = sorted({u.removesuffix("/paper") for _, us in broken.values() for u in us})
        lines.append("A broken file is left where it is: move it away and fetch it again "
                     f"(iman weights fetch {' '.join(methods)}) or replace it by hand, then "
                     "check it: iman weights verify FILE --method METHOD;")
    elif named:
        lines.append("Replace the file model.weights names, then check it: iman weights verify "
                     "FILE --method METHOD;")
    lines.append("or train from random initialisation on purpose: --config "
                 "'model={\"pretrained\": false}' (the tables then say so).")
    raise WeightsError("\n".join(lines))


_CHECKED: dict[str, str | None] = {}


def check_once(model_cfg: Mapping[str, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """:func:`check_available`, run once per process for a config: the workflow calls it
    from the first training job the DAG holds, so targets without training never need
    weights, and a run that needs them stops before its first job with every fault."""
    pairs = sorted(set(pairs))
    key = json.dumps([model_cfg.get("pretrained", True), model_cfg.get("weights"), pairs,
                      str(cache_dir()), str(catalog_path())], sort_keys=True, default=str)
    if key not in _CHECKED:
        try:
            check_available(model_cfg, pairs)
            _CHECKED[key] = None
        except WeightsError as err:
            _CHECKED[key] = str(err)
    if _CHECKED[key]:
        raise WeightsError(_CHECKED[key])


def weights_key(r: Resolved) -> tuple[str | None, str | None]:
    """(name, SHA-256) that key a node on its weights: the cache file's name (a config file's
    absolute path) and its content digest; (None, None) for random init. Moving the cache
    changes neither; a new file changes the digest."""
    if r.path is None:
        return None, None
    path = Path(r.path)
    name = path.name if r.source == "cache" else str(path)
    if not path.is_file():
        return name, None
    return name, file_digest(path, read_manifest(path.parent))


def locate(name: str, sha256: str | None = None) -> Path:
    """The file a node's protocol names (a cache file name or an absolute path), checked
    against the digest the node was keyed on; :class:`WeightsError` names it otherwise."""
    path = Path(name) if os.path.isabs(name) else cache_dir() / name
    if not path.is_file():
        raise WeightsError(f"weight file {path} is missing (the node was planned with "
                           f"SHA-256 {sha256}); fetch it: iman weights fetch, or put it there")
    if sha256:
        digest = file_digest(path, read_manifest(path.parent))
        if digest != sha256:
            raise WeightsError(f"weight file {path} has SHA-256 {digest}, but the node was "
                               f"planned with {sha256}: the file changed after the DAG was "
                               "built; re-run snakemake so the affected nodes retrain")
    return path


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


def _download_failure(err: BaseException) -> tuple[str, bool]:
    """(what happened, whether it looks like no network at all)."""
    import socket
    from urllib.error import HTTPError, URLError

    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}", False
    reason = getattr(err, "reason", err) if isinstance(err, URLError) else err
    if isinstance(reason, socket.gaierror):
        return f"DNS lookup failed ({reason})", True
    if isinstance(reason, ConnectionRefusedError | TimeoutError | socket.timeout):
        return f"no connection ({reason})", True
    if isinstance(reason, OSError) and reason.errno in (101, 113):  # network/host unreachable
        return f"no connection ({reason})", True
    return f"{type(reason).__name__}: {reason}", False


class _BadDownloadError(Exception):
    """A download that arrived but cannot be kept: short, or failing its checksum."""


def _download(url: str, dest: Path, sha256: str | None, progress: bool) -> tuple[Path, str]:
    """Stream ``url`` to ``DEST.partial`` beside ``dest``; (that file, its SHA-256).

    Unlike ``torch.hub.download_url_to_file``, the bytes received are compared with the
    server's Content-Length: a connection closed early is a :class:`_BadDownloadError`, as is
    a digest without the catalogue's ``sha256`` (full or prefix). Nothing is left behind
    on any failure.
    """
    from http.client import HTTPException
    from urllib.request import Request, urlopen

    from tqdm import tqdm

    part = dest.with_name(dest.name + ".partial")
    h, got, expected = hashlib.sha256(), 0, None
    try:
        with urlopen(Request(url, headers={"User-Agent": "iman"}), timeout=60) as resp, \
                open(part, "wb") as out:
            length = resp.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, disable=not progress) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
    except HTTPException as err:  # IncompleteRead: the server closed the connection early
        part.unlink(missing_ok=True)
        raise _BadDownloadError(f"short download: received {got} of {expected or '?'} bytes "
                                f"(the connection closed early: {type(err).__name__})") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    digest = h.hexdigest()
    problem = None
    if expected is not None and got != expected:
        problem = f"short download: received {got} of {expected} bytes (Content-Length)"
    elif sha256 and not digest.startswith(sha256):
        problem = f"downloaded, but failed its checksum (SHA-256 {digest}, not {sha256})"
    if problem:
        part.unlink(missing_ok=True)
        raise _BadDownloadError(problem)
    return part, digest


def fetch(files: Sequence[WeightFile], directory: Path | None = None,
          progress: bool = True) -> list[tuple[WeightFile, Path, str]]:
    """Download each file into the cache (unless a valid copy is there); verify; record.

    Each file's sources are tried in order until one downloads and passes its checksum;
    what happened at each source is reported. Returns (file, path, how): ``cached``,
    ``fetched [(source i)]``, or ``placed by hand (recorded)`` for a valid file found in the
    cache without a record (recorded with its digest and no URL). A download that is short
    of its Content-Length, fails its checksum or its content check leaves nothing; a file
    already in the cache is never deleted or overwritten: a broken one is reported and left.
    Every file is tried; the failures are raised together as one :class:`WeightsError`.
    """
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    done: list[tuple[WeightFile, Path, str]] = []
    problems: list[str] = []
    offline = True
    for f in files:
        manifest = read_manifest(directory)
        present = [(s, directory / s.filename) for s in f.sources
                   if (directory / s.filename).is_file()]
        if present:
            source, path = present[0]
            problem = file_problem(path, source, manifest)
            if problem is None:
                prior = manifest.get(path.name, {})
                if "mtime_ns" not in prior:  # unrecorded (or an old record): record it now
                    _record(directory, f, source, path, sha256sum(path), prior.get("url"))
                done.append((f, path, "cached" if prior.get("url") or "mtime_ns" in prior
                             else "placed by hand (recorded)"))
            else:
                offline = False
                problems.append(f"{f.id}: {path} {problem}. It was left where it is: move it "
                                "away and fetch again, or replace it by hand")
            continue
        tried = []
        for i, source in enumerate(f.sources, 1):
            path = directory / source.filename
            try:
                part, digest = _download(source.url, path, source.sha256, progress)
            except _BadDownloadError as err:  # short or wrong checksum; nothing kept
                offline = False
                tried.append(f"source {i} {source.url}: {err}; discarded")
                continue
            except (OSError, ValueError) as err:  # URLError/HTTPError are OSErrors
                what, no_net = _download_failure(err)
                offline &= no_net
                tried.append(f"source {i} {source.url}: {what}")
                continue
            problem = file_problem(part, source, {})
            if problem:  # e.g. an HTML page served with status 200, another network
                part.unlink(missing_ok=True)  # our own download, never a user's file
                offline = False
                tried.append(f"source {i} {source.url}: the download {problem}; discarded")
                continue
            part.replace(path)
            _record(directory, f, source, path, digest, source.url)
            done.append((f, path, "fetched" if i == 1 else f"fetched (source {i})"))
            break
        else:
            places = "\n".join(f"      {s.url}\n        -> {directory / s.filename}"
                               for s in f.sources)
            problems.append("\n    ".join([f"{f.id} ({', '.join(f.models)}):", *tried])
                            + "\n    manual route: download one of these yourself and put it "
                            f"at its place:\n{places}")
    if problems:
        text = "\n  - ".join(["could not fetch every file:", *problems])
        if offline:
            text += ("\nNo source was reachable (no network here?): run `iman weights fetch` "
                     "on a machine with internet and copy the cache.")
        raise WeightsError(text + "\nThen check each file: iman weights verify FILE --method "
                           "METHOD")
    return done


def verify(path: Path, method: str, variant: str = "paper", size: int | None = None,
           frames: int | None = None) -> list[Any]:
    """Load ``path`` into the method's model(s); one :class:`~iman.models.blocks.LoadReport`
    per branch.

    The models are built as a run builds them: at ``size`` (default the method's paper
    input) with RGB input per grey channel, for the US branch (3 channels) and, for a
    method that takes CEUS, the CEUS branch of ``frames`` frames (3T channels: exercises
    the position-embedding resize and the root-conv tiling). A method without a pretrained
    loader is checked as a whole-model state dict.
    """
    from iman.models import build_model, get_entry
    from iman.models.blocks import load_report, read_state_file

    entry = get_entry(method)
    size = size or int(entry.paper_input.get("img_size", 224))
    reports = []
    for modality in entry.modalities if frames else entry.modalities[:1]:
        t = int(frames or 1)
        channels = {m: 3 * (1 if m == "us" else t) for m in entry.consumed(modality)}
        model = build_model(method, channels, size, variant)
        loader = entry.weights_loader()
        if loader is not None:
            reports.append(loader(model, str(path)))
        else:
            reports.append(load_report(model, read_state_file(path), str(path),
                                       f"{method} (whole model)"))
        for r in reports[-1:]:
            r.what += f" [{modality}: {sum(channels.values())} channels, {size} px]"
    return reports
