"""Checkpoint files that cannot run code: written with tensors and plain types only, read
with ``torch.load(..., weights_only=True)``.

best.pt, last.pt and resume.pt hold dicts of tensors, numbers, strings, lists, tuples and
dicts (the RNG states encoded as tensors and tuples of ints, :func:`rng_state`). Every read
goes through :func:`load_checkpoint`: a file that holds anything else (a pickled object or a
function call, as a file received from someone else may) is refused with a
:class:`CheckpointError` naming it, before any of its code can run.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iman.errors import UserError

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "rng_state", "set_rng_state"]

REQUIRED = ("config", "model")
"""Keys every iman checkpoint (best, last, resume) holds."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is unsafe to load, damaged or not an iman checkpoint."""


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` onto ``device``.

    Anything but tensors and plain types is refused (the file's code never runs), as is a
    damaged file or one without an iman checkpoint's ``config`` and ``model``.
    """
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused: it holds more than tensors and plain values ({_what(err)}), "
            "and loading it could run code it carries. Use a checkpoint the workflow wrote "
            "(retrain the node, or ask the sender for the run's own best.pt)") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err}); retrain the node "
                              "or fetch the file again") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        raise CheckpointError(f"{path}: not an iman checkpoint (expected a dict with "
                              f"{', '.join(REQUIRED)}, found {type(ckpt).__name__})")
    return ckpt


def _what(err: pickle.UnpicklingError) -> str:
    """The part of torch's refusal that says what the file holds (e.g. ``GLOBAL io.open``)."""
    found = re.search(r"Unsupported [^\n]*?(?= was not|\n|$)", str(err))
    return found.group(0) if found else type(err).__name__


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    """Python, numpy, torch and ``gen`` RNG states as tensors and tuples of plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(),
            "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos),
                      int(has_gauss), float(gauss)),
            "python": random.getstate()}


def set_rng_state(gen: torch.Generator, state: dict[str, Any]) -> None:
    """Restore the states :func:`rng_state` recorded (CPU tensors; any device is moved)."""
    torch.set_rng_state(state["torch"].cpu())
    gen.set_state(state["gen"].cpu())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
