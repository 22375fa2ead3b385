"""Building blocks shared by several methods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iman.errors import UserError

__all__ = [
    "BatchNorm2dAnyBatch",
    "LoadReport",
    "WrongWeightsError",
    "adapt_first_conv",
    "adapt_std_first_conv",
    "check_size",
    "double_conv",
    "load_matching",
    "load_report",
    "load_weight_file",
    "read_state_file",
    "standardise",
    "unreadable",
]


class WrongWeightsError(UserError, ValueError):
    """A weight file does not fit the model it is loaded into; the message names the file."""


@dataclass
class LoadReport:
    """What loading a pretrained file into a model did (``iman weights verify`` prints it).

    ``missing``: target tensors the file should fill (the modules it is meant for) but does
    not hold; ``unexpected``: file tensors with no target; ``mismatched``: same name,
    different shape. A file fits when it loads something and misses and mismatches nothing.
    """

    source: str
    what: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file filled every tensor it is meant to fill."""
        return bool(self.loaded) and not self.missing and not self.mismatched

    def counts(self) -> str:
        """One line: how many tensors were loaded, missing, mismatched and unused."""
        return (f"{len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
                f"{len(self.mismatched)} shape-mismatched, {len(self.unexpected)} unused "
                "in the file")

    def details(self, limit: int = 8) -> list[str]:
        """The first ``limit`` names of every non-empty list, and the notes."""
        lines = []
        for name in ("missing", "mismatched", "unexpected"):
            keys = getattr(self, name)
            if keys:
                more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
                lines.append(f"  {name}: " + ", ".join(keys[:limit]) + more)
        return lines + [f"  note: {n}" for n in self.notes]

    def text(self, limit: int = 8) -> str:
        """The report as printed by ``iman weights verify``."""
        return "\n".join([f"{self.source}: {self.what}: {self.counts()}",
                          *self.details(limit)])

    def check(self) -> LoadReport:
        """Raise :class:`WrongWeightsError` (naming the file) unless the file fits."""
        if not self.ok:
            raise WrongWeightsError("\n".join([
                f"{self.source} is not a {self.what} weight file ({self.counts()}):",
                *self.details(),
                f"Check it: iman weights verify {self.source} --method METHOD"]))
        return self


UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError,
              AttributeError, ImportError)
"""What reading a broken weight file raises: ``BadZipFile`` and ``UnpicklingError`` are
``Exception`` subclasses caught through :func:`unreadable`."""


def unreadable(path: str | Path, err: BaseException, what: str = "weights") -> WrongWeightsError:
    """The error for a file that cannot be read as weights: names it and the check."""
    return WrongWeightsError(
        f"{path}: cannot be read as {what} ({type(err).__name__}: {err}). A truncated "
        "download, a saved web page or another format? Check it: iman weights verify "
        f"{path} --method METHOD")


def read_state_file(path: str | Path) -> dict[str, Any]:
    """Tensors of a ``torch.save`` / ``.safetensors`` file (unwrapping ``model``/``state_dict``).

    Any read failure (truncated zip, pickle error, HTML page) is a
    :class:`WrongWeightsError` naming the file.
    """
    import pickle
    import zipfile

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (*UNREADABLE, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise unreadable(path, err) from None
    except Exception as err:  # safetensors' own errors and the like
        raise unreadable(path, err) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                return dict(obj[key])
        return dict(obj)
    raise WrongWeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """An RGB first-layer kernel ``(O, 3, kh, kw)`` for ``in_channels`` inputs (plain convs).

    3 → as is; 1 → summed over RGB (the same function as repeating grey to RGB); 3k (k
    frames, each grey repeated to RGB) → tiled k times and divided by k, so k identical
    frames give the pretrained response (I3D-style inflation); any extra channels (a margin
    channel) get zero weights, so they start without effect. Exact for a plain conv; a
    weight-standardised conv needs :func:`adapt_std_first_conv`.
    """
    if weight.shape[1] != 3 or in_channels == weight.shape[1]:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    k = in_channels // 3
    out = weight.new_zeros(weight.shape[0], in_channels, *weight.shape[2:])
    if k:
        out[:, :3 * k] = weight.repeat(1, k, 1, 1) / k
    else:
        out[:, :1] = weight.sum(dim=1, keepdim=True)
    return out


def standardise(weight: Tensor, eps: float) -> Tensor:
    """Weight standardisation per output filter (zero mean, unit variance over C, kh, kw)."""
    var, mean = torch.var_mean(weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (weight - mean) / torch.sqrt(var + eps)


def adapt_std_first_conv(weight: Tensor, in_channels: int, eps: float
                         ) -> tuple[Tensor, Tensor]:
    """(raw kernel, per-filter gain) for a weight-standardised first conv of
    ``in_channels`` inputs, such that ``gain * standardise(raw)`` is exactly the kernel that
    :func:`adapt_first_conv` makes of the *standardised* pretrained kernel.

    Standardisation does not commute with summing or tiling/k (it rescales by the kernel's
    own std), so adapting the raw kernel changes the effective filters. Here: 3k channels
    (k frames) → raw = the kernel tiled k times, whose statistics are the pretrained ones,
    and gain = 1/k; anything else (grey, extra margin channels) → raw = the adapted
    standardised kernel (zero mean by construction) and gain = its std, which
    standardisation divides out. So k identical frames (or grey repeated to RGB) give the
    pretrained response exactly, and an extra channel's effective weight is exactly zero.
    """
    o = weight.shape[0]
    if weight.shape[1] != 3 or in_channels == 3:
        return weight, weight.new_ones(o, 1, 1, 1)
    if in_channels % 3 == 0:
        k = in_channels // 3
        return weight.repeat(1, k, 1, 1), weight.new_full((o, 1, 1, 1), 1.0 / k)
    target = adapt_first_conv(standardise(weight.double(), eps), in_channels)
    target = target - target.mean(dim=(1, 2, 3), keepdim=True)  # exactly zero mean
    var = target.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return target.to(weight.dtype), torch.sqrt(var + eps).to(weight.dtype)


def load_report(model: nn.Module, state: Mapping[str, Tensor], source: str, what: str,
                required: tuple[str, ...] = ("",), first_conv: str | None = None) -> LoadReport:
    """Copy every ``state`` tensor whose name and shape match ``model``; report the rest.

    ``required``: name prefixes of the model tensors the file is meant to fill (the rest are
    trained from scratch); ``first_conv``: the model's first conv weight, adapted from RGB
    to the model's input channels (:func:`adapt_first_conv`).
    """
    own = model.state_dict()
    state = dict(state)
    if first_conv is not None and first_conv in state and first_conv in own:
        state[first_conv] = adapt_first_conv(state[first_conv], own[first_conv].shape[1])
    report = LoadReport(source, what)
    update, bad = {}, set()
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            bad.add(key)
            report.mismatched.append(f"{key} {tuple(value.shape)} != {tuple(own[key].shape)}")
        else:
            update[key] = value
            report.loaded.append(key)
    report.missing = [k for k in own if k not in update and k not in bad
                      and k.startswith(required) and not k.endswith("num_batches_tracked")]
    model.load_state_dict(update, strict=False)
    return report


def check_size(method: str, img_size: int, factor: int, hint: str = "") -> None:
    """Raise when ``img_size`` is not a multiple of ``factor`` (the method's total stride)."""
    if img_size % factor:
        raise ValueError(f"{method} needs an input size divisible by {factor}, got {img_size}"
                         + (f" ({hint})" if hint else ""))


def load_weight_file(model: nn.Module, path: str, what: str) -> None:
    """Load a local whole-model state dict strictly; a mismatch names the file and ``what``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} is not a {what} state dict for this variant: {err}") from err


class BatchNorm2dAnyBatch(nn.BatchNorm2d):
    """BatchNorm2d that also trains on a single value per channel (batch 1 on a 1×1 map).

    With one value per channel batch statistics are undefined (PyTorch raises); such a batch
    is normalised with the running statistics, which it leaves unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Batch statistics when defined, else the running ones."""
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


def load_matching(model: nn.Module, state: Mapping[str, Tensor], what: str) -> int:
    """Load every entry of ``state`` whose name and shape match ``model``; return the count.

    Raises when nothing matches (a wrong file), naming ``what`` was expected.
    """
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"no {what} weight matched")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def double_conv(c_in: int, c_out: int, mid: int | None = None) -> nn.Sequential:
    """Two conv3×3-BN-ReLU layers (the U-net block); ``mid`` channels in between."""
    mid = mid or c_out
    return nn.Sequential(
        nn.Conv2d(c_in, mid, 3, padding=1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )
