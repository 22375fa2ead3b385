"""Model registry: a name maps to a constructor and what the method consumes.

Every registered model follows one contract (see :class:`SegModel`):

* ``forward(x, margin=None)``: ``x`` is ``(B, C, H, W)`` float, the channel concatenation
  of the entry's ``inputs`` in order (``us`` = ``in_channels["us"]`` channels, ``ceus`` =
  ``in_channels["ceus"]`` stacked frames). ``margin`` is ``(B, 1, H, W)`` in ``[0, 1]`` or
  ``None`` (= all ones: no gating). Returns logits ``(B, 1, H, W)`` (no activation).
  In training mode a model may instead return a dict with ``"logits"`` and extra keys that
  its own ``loss`` understands (deep supervision, side outputs).
* optional ``loss(out, target, base) -> Tensor``: the method's own training loss; ``base``
  is the trainer's segmentation loss ``base(logits, target)``. Absent: ``base(logits)``.
* optional ``adversary`` (``nn.Module``) and ``adversary_loss(out, target) -> Tensor``:
  a second player trained by the trainer with its own optimizer after each generator step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily: light jobs (tables, metrics) never pay for it
    from torch import nn

__all__ = [
    "INJECTIONS",
    "REGISTRY",
    "ModelEntry",
    "UnknownModelError",
    "build_model",
    "count_parameters",
    "get_entry",
    "register",
]

INJECTIONS = ("gate_skips", "input_channel")


class UnknownModelError(KeyError):
    """Raised for a model or variant name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class ModelEntry:
    """One registered method.

    ``build(in_channels, img_size, **variant_kwargs)`` returns the module; ``in_channels``
    maps each consumed modality to its channel count.
    """

    name: str
    build: Callable[..., nn.Module]
    variants: dict[str, dict[str, Any]]
    modalities: tuple[str, ...] = ("us", "ceus")
    inputs: tuple[str, ...] | None = None
    gates_skips: bool = True
    paper_params_m: float | None = None
    paper_input: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    family: str = "framework"
    load_weights: Callable[[nn.Module, str], Any] | None = None
    """``(model, path) -> LoadReport`` for the method's pretrained file (None: whole-model
    state dicts only); ``iman weights verify`` prints its report."""

    def consumed(self, modality: str) -> tuple[str, ...]:
        """Modalities fed to the model when it predicts ``modality``."""
        return self.inputs if self.inputs is not None else (modality,)


REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry (names are unique)."""
    if entry.name in REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    if "paper" not in entry.variants:
        raise ValueError(f"model {entry.name!r} needs a 'paper' variant")
    REGISTRY[entry.name] = entry
    return entry


def get_entry(name: str) -> ModelEntry:
    """Look a method up (importing only its module); unknown names list the valid ones."""
    if name not in REGISTRY:
        _load_module_of(name)
    if name not in REGISTRY:
        _load_all()
    if name not in REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


def build_model(
    name: str,
    in_channels: dict[str, int],
    img_size: int,
    variant: str = "paper",
    injection: str = "gate_skips",
    weights: str | None = None,
) -> nn.Module:
    """Instantiate a registered model; ``injection='input_channel'`` adds a margin channel."""
    entry = get_entry(name)
    if variant not in entry.variants:
        raise UnknownModelError(
            f"model {name!r} has no variant {variant!r}; variants: {', '.join(entry.variants)}"
        )
    if injection not in INJECTIONS:
        raise ValueError(f"injection must be one of {INJECTIONS}, got {injection!r}")
    kwargs = dict(entry.variants[variant])
    if weights:
        kwargs["weights"] = weights
    if injection == "input_channel":
        from iman.models.injection import InputChannelMargin

        last = list(in_channels)[-1]
        widened = {**in_channels, last: in_channels[last] + 1}
        return InputChannelMargin(entry.build(widened, img_size, **kwargs))
    return entry.build(in_channels, img_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, excluding an adversary (discriminators) if present."""
    adversary = getattr(model, "adversary", None)
    skip = {id(p) for p in adversary.parameters()} if adversary is not None else set()
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in skip)


_LOADED = False
_SMP = ("unet", "fpn", "unetpp", "deeplabv3")


def _load_module_of(name: str) -> None:
    """Import the one module that registers ``name`` (module = name, or the smp module)."""
    import importlib

    from iman.models import MODEL_MODULES

    module = "smp_models" if name in _SMP else name
    if module in MODEL_MODULES:
        importlib.import_module(f"iman.models.{module}")


def _load_all() -> None:
    """Import every model module once so their ``register`` calls run."""
    global _LOADED
    if _LOADED:
        return
    import importlib

    from iman.models import MODEL_MODULES

    for mod in MODEL_MODULES:
        importlib.import_module(f"iman.models.{mod}")
    _LOADED = True
