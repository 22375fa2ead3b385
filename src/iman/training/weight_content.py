"""What a weight file holds, read cheaply: its format, its tensors' names and shapes, and
whether the bytes it promises are there; compared with a catalogue entry's layout signature.

Nothing here reads tensor data or imports torch:

- safetensors: the JSON header, and every tensor's ``data_offsets`` against the file size
  and its dtype × shape;
- torch (zip and legacy ``torch.save``): the pickle, read by :class:`_Index`, which knows
  only tensors, typed storages and ordered dicts and calls nothing else; every view against
  its storage, and every storage against its zip record (zip) or the bytes left in the file
  (legacy). A pickle with anything else is left to ``torch.load(weights_only=True,
  mmap=True)``, which refuses what is not tensors and plain types;
- npz: the zip central directory, then each array's ``.npy`` header against its record size.

A :class:`Signature` (catalogue ``expect:``) tells one network from another without building
it: a range of tensor counts and a few sentinel keys with their shapes (ResNet-50 and
ResNeXt-50 share every name; ``layer1.0.conv2.weight`` is (64, 64, 3, 3) in one and
(128, 4, 3, 3) in the other).

Importing this module does not import torch.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["FORMATS", "ContentError", "Shapes", "Signature", "read_shapes", "sniff"]

Shapes = dict[str, tuple[int, ...]]

FORMATS = {"npz": ("npz",), "torch": ("torch zip", "torch legacy"),
           "timm": ("torch zip", "torch legacy"), "safetensors": ("safetensors",)}
"""The file formats each catalogue layout may come in."""

_HTML = (b"<!doctype", b"<html", b"<?xml", b"<head", b"{\"error", b"<!--")
_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


class ContentError(Exception):
    """A file whose content is not what it claims; the message completes "<path> ..."."""


def sniff(path: Path) -> str:
    """The format the first bytes and the zip directory show: ``safetensors``, ``torch
    zip``, ``torch legacy``, ``npz``, ``zip``, ``html``, ``empty`` or ``unknown``."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        return "empty"
    if head.lstrip().lower().startswith(_HTML):
        return "html"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise ContentError(f"is a damaged or truncated zip archive ({err})") from None
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch zip"
        return "npz" if any(n.endswith(".npy") for n in names) else "zip"
    if head[:1] == b"\x80":  # legacy torch.save: pickle protocol 2
        return "torch legacy"
    if len(head) >= 9 and head[8:9] == b"{":  # 8-byte header size, then the JSON header
        return "safetensors"
    return "unknown"


def read_shapes(path: Path, fmt: str) -> Shapes:
    """Every tensor's name and shape, after checking the file holds the bytes it promises;
    :class:`ContentError` otherwise."""
    readers = {"safetensors": _safetensors_shapes, "npz": _npz_shapes,
               "torch zip": _torch_shapes, "torch legacy": _torch_shapes}
    return readers[fmt](path)


def _safetensors_shapes(path: Path) -> Shapes:
    """The header's tensors, each one's byte range checked against the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > size - 8:
            raise ContentError(f"is truncated: its safetensors header alone is {n} bytes, "
                               f"the file {size}")
        try:
            header = json.loads(fh.read(n))
        except ValueError as err:
            raise ContentError(f"has an unreadable safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise ContentError("has a safetensors header that is not a JSON object")
    data, shapes, bad, need = size - 8 - n, {}, [], 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(v) for v in info["data_offsets"])
            shape = tuple(int(d) for d in info["shape"])
            width = _ST_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise ContentError(f"has a malformed safetensors entry {name!r}") from None
        need = max(need, end)
        if end - start != width * math.prod(shape):
            bad.append(name)
        shapes[name] = shape
    if need > data:
        raise ContentError(
            f"is truncated: its header describes {need / 1e6:.1f} MB of tensor data, the file "
            f"holds {data / 1e6:.1f} MB ({_percent(data, need)})")
    if bad:
        raise ContentError(f"has {len(bad)} tensors whose byte range does not fit their "
                           f"dtype and shape (e.g. {bad[0]})")
    return shapes


def _npz_shapes(path: Path) -> Shapes:
    """Each ``.npy`` member's shape, its record size checked against dtype × shape."""
    import numpy as np

    shapes, bad = {}, []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            try:
                with z.open(info) as fh:
                    major, _ = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if major == 1
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(fh)
                    body = info.file_size - fh.tell()
            except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
                raise ContentError(f"has an unreadable array {info.filename} ({err})") from None
            if dtype.hasobject or body != dtype.itemsize * math.prod(shape):
                bad.append(info.filename)
            shapes[info.filename.removesuffix(".npy")] = tuple(shape)
    if bad:
        raise ContentError(f"has {len(bad)} arrays whose record does not match their dtype "
                           f"and shape, or that hold Python objects (e.g. {bad[0]})")
    return shapes


def _torch_shapes(path: Path) -> Shapes:
    """Tensor shapes of a ``torch.save`` file, from its pickle and storage index alone
    (:class:`_Index`, no torch import); a pickle it does not know is left to a
    memory-mapped ``torch.load(weights_only=True)``."""
    try:
        with open(path, "rb") as fh:
            zipped = zipfile.is_zipfile(fh)
            fh.seek(0)
            state = _index_zip(path) if zipped else _index_legacy(fh)
        return {k: v.shape for k, v in state.items() if isinstance(v, _Tensor)}
    except (_UnknownError, TypeError, AttributeError, IndexError):  # an unusual pickle
        return _torch_load_shapes(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as err:
        raise ContentError(f"cannot be read as a torch file ({type(err).__name__}: "
                           f"{err})") from None


def _torch_load_shapes(path: Path) -> Shapes:
    """A ``weights_only`` torch load (memory-mapped for the zip format: no data read)."""
    import torch

    zipped = zipfile.is_zipfile(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError,
            zipfile.BadZipFile) as err:
        if "Weights only load failed" in str(err):
            raise ContentError("holds objects other than tensors and plain types (refused by "
                               "torch.load(weights_only=True)): not a weight file") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ContentError(f"cannot be read as a torch file ({first})") from None
    state = _unwrap(obj)
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


_ELEMENT = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
            "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
            "ByteStorage": 1, "BoolStorage": 1}
"""Bytes per element of the typed storages a state dict's pickle names."""


class _UnknownError(Exception):
    """A pickle :class:`_Index` does not read (left to torch's own loader)."""


@dataclass(frozen=True)
class _Storage:
    kind: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    shape: tuple[int, ...]
    extent: int  # elements of the storage the view reaches


def _rebuild(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: the view's shape and extent."""
    shape = tuple(int(d) for d in size)
    reach = 0 if 0 in shape else 1 + sum((d - 1) * int(s) for d, s in zip(shape, stride))
    return _Tensor(storage, shape, int(offset) + reach)


class _Index(pickle.Unpickler):
    """Reads a ``torch.save`` pickle without torch: a tensor becomes its storage key and
    shape. Only an ordered dict, typed storages and tensor rebuilds are known; any other
    global is an :class:`_UnknownError` (nothing outside this list is ever called)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild
        if module == "torch" and name in _ELEMENT:
            return name
        raise _UnknownError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and pid[1] in _ELEMENT) or (len(pid) > 5 and pid[5] is not None):
            raise _UnknownError(repr(pid)[:80])  # not a storage, or a view of one
        return _Storage(pid[1], str(pid[2]), int(pid[4]))


def _tensors(obj: Any) -> dict[str, Any]:
    """The state dict of an indexed pickle, each view within its storage."""
    state = dict(_unwrap(obj))
    for key, t in state.items():
        if isinstance(t, _Tensor) and t.extent > t.storage.numel:
            raise ContentError(f"has a tensor {key} that reaches beyond its storage")
    return state


def _index_zip(path: Path) -> dict[str, Any]:
    """The zip format: ``data.pkl``, and each storage's record against its size."""
    with zipfile.ZipFile(path) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        state = _tensors(_Index(io.BytesIO(z.read(pkl))).load())
        prefix = pkl.removesuffix("data.pkl")
        sizes = {i.filename: i.file_size for i in z.infolist()}
    storages = {t.storage for t in state.values() if isinstance(t, _Tensor)}
    short = [s.key for s in storages
             if sizes.get(f"{prefix}data/{s.key}", -1) < s.numel * _ELEMENT[s.kind]]
    if short:
        raise ContentError(f"is truncated: {len(short)} of its {len(storages)} tensor records "
                           "are missing or short")
    return state


def _index_legacy(fh: BinaryIO) -> dict[str, Any]:
    """The legacy format: magic, protocol, system info, the state's pickle, the storage
    keys, then each storage as an 8-byte element count and its bytes (seeked over)."""
    if _Index(fh).load() != _LEGACY_MAGIC:
        raise _UnknownError("not the legacy torch format")
    _Index(fh).load(), _Index(fh).load()  # protocol version, system info
    state = _tensors(_Index(fh).load())
    keys = _Index(fh).load()
    kinds = {t.storage.key: t.storage for t in state.values() if isinstance(t, _Tensor)}
    if set(keys) - set(kinds):
        raise _UnknownError("storages no tensor uses")
    size, need = os.fstat(fh.fileno()).st_size, fh.tell()
    need += sum(8 + kinds[k].numel * _ELEMENT[kinds[k].kind] for k in keys)
    if need > size:
        raise ContentError(f"is truncated: its index describes {need / 1e6:.1f} MB, the file "
                           f"holds {size / 1e6:.1f} MB ({_percent(size, need)})")
    for key in keys:
        if int.from_bytes(fh.read(8), "little") != kinds[key].numel:
            raise ContentError(f"has a storage {key} whose size differs from its index")
        fh.seek(kinds[key].numel * _ELEMENT[kinds[key].kind], os.SEEK_CUR)
    return state


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first pickle of a legacy (pre-1.6) ``torch.save`` file."""


def _unwrap(obj: Any) -> Mapping[str, Any]:
    """The state dict, under ``model``/``state_dict`` where a release wraps it."""
    if not isinstance(obj, Mapping):
        raise ContentError(f"holds a {type(obj).__name__}, not a state dict")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


@dataclass(frozen=True)
class Signature:
    """What a file of one network holds: a tensor-count range and sentinel key shapes."""

    tensors: tuple[int, int]
    keys: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def parse(cls, raw: Any) -> Signature:
        """From a catalogue ``expect:`` mapping; a ``ValueError`` says what is wrong."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("keys"), Mapping):
            raise ValueError("'expect' needs 'tensors: [MIN, MAX]' and 'keys: {NAME: SHAPE}'")
        lo, hi = (int(v) for v in raw.get("tensors", (1, 10**6)))
        keys = tuple((str(k), tuple(int(d) for d in s)) for k, s in raw["keys"].items())
        return cls((lo, hi), keys)

    def problems(self, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
        """Every way ``shapes`` differs from this signature (empty: it matches)."""
        out = []
        lo, hi = self.tensors
        if not lo <= len(shapes) <= hi:
            out.append(f"holds {len(shapes)} tensors, not {lo}–{hi}")
        lacking = [k for k, _ in self.keys if k not in shapes]
        if lacking:
            out.append(f"lacks {', '.join(lacking)}")
        out += [f"{k} is {_fmt(shapes[k])}, not {_fmt(s)}" for k, s in self.keys
                if k in shapes and shapes[k] != s]
        return out


def _percent(part: int, whole: int) -> str:
    """``part`` of ``whole``, rounded down (a file 99.9 % there is not "100 %")."""
    return f"{1000 * part // whole / 10:.1f} %"


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
