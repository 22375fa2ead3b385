"""Building blocks shared by several methods."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

__all__ = ["double_conv", "load_matching"]


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
