"""Building blocks shared by several methods."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BatchNorm2dAnyBatch",
    "check_size",
    "double_conv",
    "load_matching",
    "load_weight_file",
]


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
