"""Method registry: every method, in-tree or plug-in, is a card found through one
entry-point group, :data:`METHOD_GROUP` (``iman.methods``).

A card (:class:`MethodCard`) is light data: its name, table label, variants, input contract
and *references* (``"module:function"``) to its constructor and weight loader, imported only
when a model is built. Reading the catalogue therefore never imports torch, so config
validation, experiment names, ``node_protocol`` and the Snakefile parse stay light. The
in-tree methods are declared in ``pyproject.toml`` (cards in :mod:`iman.models.cards`); a
plug-in package declares its own the same way (``docs/methods/adding-a-method.md``).

Every built model follows one contract:

* ``forward(x, margin=None)``: ``x`` is ``(B, C, H, W)`` float, the channel concatenation
  of the card's ``inputs`` in order (``us`` = ``in_channels["us"]`` channels, ``ceus`` =
  ``in_channels["ceus"]`` stacked frames). ``margin`` is ``(B, 1, H, W)`` in ``[0, 1]`` or
  ``None`` (= all ones: no gating). Returns logits ``(B, 1, H, W)`` (no activation).
  In training mode a model may instead return a dict with ``"logits"`` and extra keys that
  its own ``loss`` understands (deep supervision, side outputs).
* optional ``loss(out, target, base) -> Tensor``: the method's own training loss; ``base``
  is the trainer's segmentation loss ``base(logits, target)``. Absent: ``base(logits)``.
* optional ``adversary`` (``nn.Module``) and ``adversary_loss(out, target) -> Tensor``:
  a second player trained by the trainer with its own optimizer after each generator step.

A broken plug-in (its card module fails to import, or its card breaks the contract) never
stops the others: it is recorded with its package, ``iman models`` reports it, and asking for
its method raises :class:`PluginError` naming the package.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from iman.errors import UserError
from iman.names import INJECTIONS, METHOD_NAME, METHOD_NAMES, MODALITIES

if TYPE_CHECKING:  # torch is imported lazily: light jobs (tables, metrics) never pay for it
    from torch import nn

__all__ = [
    "INJECTIONS",
    "IN_TREE",
    "METHOD_GROUP",
    "Broken",
    "Catalogue",
    "MethodCard",
    "PluginError",
    "Source",
    "UnknownModelError",
    "all_entries",
    "broken_plugins",
    "build_model",
    "catalogue",
    "count_parameters",
    "get_entry",
    "method_label",
    "method_record",
    "require_installed",
    "source_of",
    "valid_methods",
]

METHOD_GROUP = "iman.methods"
IN_TREE = "iman"
"""The distribution that holds the in-tree methods."""
NAME_RE = re.compile(METHOD_NAME)
"""A method name: it is a field of run names and paths."""
REFERENCE_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
RESERVED = {"iman": "IMAN"}
"""Row names that are not methods, with their labels."""


class UnknownModelError(UserError, KeyError):
    """Raised for a model or variant name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class PluginError(UserError, RuntimeError):
    """A method's package is broken or missing; the message names the package."""


@dataclass(frozen=True)
class Source:
    """Where a method comes from: a distribution package and its version."""

    package: str
    version: str

    @property
    def in_tree(self) -> bool:
        """True for the methods of this repository."""
        return self.package == IN_TREE

    def __str__(self) -> str:
        kind = "in-tree" if self.in_tree else "plug-in"
        return f"{kind}: {self.package} {self.version}"


@dataclass(frozen=True)
class MethodCard:
    """One method, as an ``iman.methods`` entry point names it (no torch import).

    ``build`` is ``"module:function"``: ``function(in_channels, img_size, **variant)`` returns
    the module (``in_channels`` maps each consumed modality to its channel count; ``weights``
    is passed as a keyword when a file is given). ``load_weights`` (optional, same form) is
    ``(model, path) -> LoadReport`` for the method's pretrained file; ``iman weights verify``
    prints its report. ``gates_skips``: the model gates its skips with the margin itself;
    False: the margin enters as an extra input channel. A ``paper`` variant is required.
    ``size_multiple``: the input size must be a multiple of it (its total stride), one value
    for every variant or a mapping variant -> value (a variant not named: any size); config
    validation refuses other sizes at parse time (:meth:`size_problem`).
    """

    name: str
    label: str
    build: str
    variants: Mapping[str, Mapping[str, Any]]
    modalities: tuple[str, ...] = MODALITIES
    inputs: tuple[str, ...] | None = None
    gates_skips: bool = True
    paper_params_m: float | None = None
    paper_input: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    family: str = "framework"
    load_weights: str | None = None
    size_multiple: int | Mapping[str, int] = 1

    def size_problem(self, variant: str, size: int) -> str | None:
        """Why ``variant`` cannot run at ``size`` x ``size`` (None: it can)."""
        multiple = self.size_multiple
        if isinstance(multiple, Mapping):
            multiple = multiple.get(variant, 1)
        if size % multiple:
            return (f"method {self.name!r} variant {variant!r} needs an input size divisible "
                    f"by {multiple}, got data.size {size} (nearest: {size - size % multiple}"
                    f" or {size - size % multiple + multiple})")
        return None

    def consumed(self, modality: str) -> tuple[str, ...]:
        """Modalities fed to the model when it predicts ``modality``."""
        return self.inputs if self.inputs is not None else (modality,)

    def constructor(self) -> Callable[..., nn.Module]:
        """The constructor (imports its module: torch and the method's code)."""
        return _resolve(self.name, self.build)

    def weights_loader(self) -> Callable[[nn.Module, str], Any] | None:
        """The pretrained-file loader, or None (whole-model state dicts only)."""
        return _resolve(self.name, self.load_weights) if self.load_weights else None


@dataclass(frozen=True)
class Broken:
    """An entry point that cannot be used, and why."""

    name: str
    value: str
    source: Source
    problem: str

    def message(self) -> str:
        """One line naming the package, the entry point and what to do."""
        return (f"method {self.name!r} of package {self.source.package} "
                f"{self.source.version} is broken (entry point {self.name} = {self.value} "
                f"in group {METHOD_GROUP}): {self.problem}. Fix the package or remove it: "
                f"pip uninstall {self.source.package}")


@dataclass(frozen=True)
class Catalogue:
    """The usable cards (in-tree first, in ``METHOD_NAMES`` order, then plug-ins by name),
    their sources, and the broken entry points."""

    cards: dict[str, MethodCard]
    sources: dict[str, Source]
    broken: tuple[Broken, ...]


def _resolve(method: str, reference: str) -> Any:
    """Import ``module:attr`` of ``method``'s card; a failure names the package."""
    module, _, attr = reference.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        src = source_of(method)
        raise PluginError(f"method {method!r} ({src}): cannot load {reference!r}: "
                          f"{type(err).__name__}: {err}. Reinstall or fix the package: "
                          f"pip install --force-reinstall {src.package}") from err
    return obj


def _card_problems(card: object, ep_name: str) -> list[str]:
    """What is wrong with ``card`` as the card of entry point ``ep_name`` (no imports run
    beyond locating the referenced modules)."""
    if not isinstance(card, MethodCard):
        return [f"it refers to a {type(card).__name__}, not an iman.models.registry.MethodCard"]
    problems = []
    if card.name != ep_name:
        problems.append(f"the card is named {card.name!r}, the entry point {ep_name!r}")
    if not NAME_RE.fullmatch(card.name) or card.name in RESERVED:
        problems.append(f"name {card.name!r} must match {NAME_RE.pattern} and not be "
                        f"one of {sorted(RESERVED)}")
    if not isinstance(card.label, str) or not card.label:
        problems.append("label must be a non-empty string")
    if "paper" not in card.variants:
        problems.append(f"no 'paper' variant (variants: {sorted(card.variants)})")
    bad = [m for m in (*card.modalities, *(card.inputs or ())) if m not in MODALITIES]
    if bad or not card.modalities:
        problems.append(f"modalities/inputs must be non-empty and among {MODALITIES}, "
                        f"got {card.modalities}/{card.inputs}")
    multiples = (card.size_multiple.values() if isinstance(card.size_multiple, Mapping)
                 else [card.size_multiple])
    if not all(isinstance(m, int) and m >= 1 for m in multiples):
        problems.append(f"size_multiple must be an integer >= 1 or a mapping variant -> "
                        f"integer, got {card.size_multiple!r}")
    for what, ref in (("build", card.build), ("load_weights", card.load_weights)):
        if ref is not None and (problem := _reference_problem(ref)):
            problems.append(f"{what} {ref!r}: {problem}")
    return problems


def _reference_problem(ref: object) -> str | None:
    """Why ``ref`` is not a ``"module:attr"`` whose module can be found (None: it is)."""
    if not isinstance(ref, str) or not REFERENCE_RE.fullmatch(ref):
        return "not a 'module:function' reference"
    try:
        found = importlib.util.find_spec(ref.partition(":")[0])
    except (ImportError, ValueError) as err:
        return f"module not found ({err})"
    return None if found is not None else "module not found"


def _source(ep: EntryPoint) -> Source:
    dist = ep.dist
    return Source(dist.name, dist.version) if dist is not None else Source("<unknown>", "?")


def _load(ep: EntryPoint) -> MethodCard | str:
    """The card of ``ep``, or why it cannot be used."""
    try:
        card = ep.load()
    except Exception as err:  # any failure of a foreign module is reported, not raised
        return f"its card module failed to import: {type(err).__name__}: {err}"
    problems = _card_problems(card, ep.name)
    return card if not problems else "; ".join(problems)


@functools.cache
def catalogue() -> Catalogue:
    """Read the ``iman.methods`` entry points once per process (cached)."""
    eps = {(ep.name, ep.value, _source(ep)): ep for ep in entry_points(group=METHOD_GROUP)}
    rank = {n: i for i, n in enumerate(METHOD_NAMES)}
    order = sorted(eps, key=lambda k: (not k[2].in_tree, rank.get(k[0], 0), k[2].package, k[0]))
    claims: dict[str, list[Source]] = {}
    for name, _, source in order:
        claims.setdefault(name, []).append(source)
    cards: dict[str, MethodCard] = {}
    sources: dict[str, Source] = {}
    broken: list[Broken] = []
    for name, value, source in order:
        owners = claims[name]
        loaded = _load(eps[(name, value, source)])
        if len(owners) > 1 and (not source.in_tree or sum(o.in_tree for o in owners) > 1):
            others = ", ".join(str(o) for o in owners if o != source)
            loaded = f"the name is also declared by {others}"
        if isinstance(loaded, str):
            broken.append(Broken(name, value, source, loaded))
        elif name not in cards:
            cards[name], sources[name] = loaded, source
    _require_in_tree(sources, broken)
    return Catalogue(cards, sources, tuple(broken))


def _require_in_tree(sources: Mapping[str, Source], broken: list[Broken]) -> None:
    """The in-tree methods are entry points too: their absence is an installation fault."""
    missing = [n for n in METHOD_NAMES if n not in sources or not sources[n].in_tree]
    faults = [b.message() for b in broken if b.source.in_tree]
    if faults:
        raise PluginError("in-tree methods are broken: " + " | ".join(faults))
    if missing:
        raise PluginError(f"the in-tree methods {missing} are not registered in entry-point "
                          f"group {METHOD_GROUP}: the installed iman metadata is stale or "
                          "missing; reinstall the project: pip install -e .")


def all_entries() -> list[MethodCard]:
    """Every usable method: the in-tree ones in ``METHOD_NAMES`` order, then plug-ins."""
    return list(catalogue().cards.values())


def broken_plugins() -> tuple[Broken, ...]:
    """Entry points that cannot be used (each names its package)."""
    return catalogue().broken


def source_of(name: str) -> Source:
    """The package a usable method comes from."""
    get_entry(name)
    return catalogue().sources[name]


def valid_methods() -> str:
    """Every usable method name with where it comes from, grouped by package."""
    groups: dict[Source, list[str]] = {}
    for name, src in catalogue().sources.items():
        groups.setdefault(src, []).append(name)
    return "; ".join(f"{', '.join(names)} ({src})" for src, names in groups.items())


def get_entry(name: str) -> MethodCard:
    """The card of ``name``; an unknown name lists the valid ones, a broken plug-in names its
    package."""
    cat = catalogue()
    if name in cat.cards:
        return cat.cards[name]
    broken = [b for b in cat.broken if b.name == name]
    if broken:
        raise PluginError(" | ".join(b.message() for b in broken))
    raise UnknownModelError(f"unknown method {name!r}; valid methods: {valid_methods()}")


def method_record(name: str) -> dict[str, str]:
    """What a checkpoint or a node's provenance records of its method: its name and the
    package (``iman`` for in-tree) and version it came from."""
    src = source_of(name)
    return {"name": name, "package": src.package, "version": src.version}


def require_installed(record: Mapping[str, str], where: str) -> MethodCard:
    """The card of the method ``record`` (:func:`method_record`) names; a plug-in that is
    not installed is an error naming the package to install."""
    name = record["name"]
    try:
        return get_entry(name)
    except UnknownModelError:
        package = record.get("package")
        if not package or package == IN_TREE:
            raise
        raise PluginError(f"{where} was made with method {name!r} of the plug-in package "
                          f"{package} {record.get('version', '')}, which is not installed: "
                          f"pip install {package}") from None


def method_label(name: str) -> str:
    """How tables and figures name ``name`` (a card's label, ``IMAN``; else the name)."""
    if name in RESERVED:
        return RESERVED[name]
    card = catalogue().cards.get(name)
    return card.label if card is not None else name


def build_model(
    name: str,
    in_channels: dict[str, int],
    img_size: int,
    variant: str = "paper",
    injection: str = "gate_skips",
    weights: str | None = None,
) -> nn.Module:
    """Instantiate a method; ``injection='input_channel'`` adds a margin channel."""
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
    build = entry.constructor()
    if injection == "input_channel":
        from iman.models.injection import InputChannelMargin

        last = list(in_channels)[-1]
        widened = {**in_channels, last: in_channels[last] + 1}
        return InputChannelMargin(build(widened, img_size, **kwargs))
    return build(in_channels, img_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, excluding an adversary (discriminators) if present."""
    adversary = getattr(model, "adversary", None)
    skip = {id(p) for p in adversary.parameters()} if adversary is not None else set()
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in skip)
