"""Kinds of training job: the nodes of a DAG that exercise the same code at the same geometry.

A *kind* is what can make a training job fail or cost differently: the method and variant,
the modality it predicts, its CEUS frames T (None when it reads no CEUS), where its margins
come from (``none``, ``self``, ``cross``, ``oracle``, ``mismatched``), whether it is a first
loop or a warm-started one, and whether it starts from a pretrained file. :func:`node_kind`
maps a node to its kind (pure: the node's name and the config's ``model`` section);
:func:`plan_kinds` groups a DAG's nodes by kind, so one representative per kind can be
rehearsed and its measurements applied to every job of the kind.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from iman.experiments import Node, margin_source, parse_name

__all__ = ["KIND_FIELDS", "MARGIN_SOURCES", "Kind", "KindPlan", "node_kind", "plan_kinds"]

MARGIN_SOURCES = ("none", "self", "cross", "oracle", "mismatched")
KIND_FIELDS = ("method", "variant", "modality", "T", "margins", "loop", "pretrained")
_ROUTING_SOURCE = {"self": "self", "cross": "cross", "oracle": "oracle", "mismatch": "mismatched"}


@dataclass(frozen=True, order=True)
class Kind:
    """One kind of training job (see the module docstring)."""

    method: str
    variant: str
    modality: str
    T: int | None
    margins: str
    loop: str  # "first" (loop 0) or "warm" (loop >= 1, from the previous loop's best)
    pretrained: bool

    @property
    def key(self) -> str:
        """A readable, unique label: ``transunet.paper/ceus/T5/cross/warm/pretrained``."""
        frames = "-" if self.T is None else f"T{self.T}"
        start = "pretrained" if self.pretrained else "random"
        return "/".join((f"{self.method}.{self.variant}", self.modality, frames, self.margins,
                         self.loop, start))

    @classmethod
    def from_key(cls, key: str) -> Kind:
        """Inverse of :attr:`key`."""
        model, modality, frames, margins, loop, start = key.split("/")
        method, _, variant = model.partition(".")
        T = None if frames == "-" else int(frames[1:])
        return cls(method, variant, modality, T, margins, loop, start == "pretrained")


@functools.cache
def _pretrained(weights: str | None, pretrained: bool, method: str, variant: str) -> bool:
    """True when the method/variant starts from a file under these ``model`` settings."""
    from iman.training.weights import resolve

    model_cfg = {"pretrained": pretrained, "weights": weights}
    return resolve(model_cfg, method, variant).source != "random"


def _starts_from_file(model_cfg: Mapping[str, Any], method: str, variant: str) -> bool:
    weights = model_cfg.get("weights")
    named = weights.get(method) if isinstance(weights, Mapping) else None
    return _pretrained(named, bool(model_cfg.get("pretrained", True)), method, variant)


def node_kind(model_cfg: Mapping[str, Any], node: Node) -> Kind:
    """The kind of ``node`` under the config's ``model`` section (pure, cached lookups)."""
    spec = parse_name(node.run)
    source = margin_source(node)
    margins = "none" if source is None else _ROUTING_SOURCE[spec.routing]
    return Kind(spec.method, spec.variant, node.modality, spec.T, margins,
                "first" if node.loop == 0 else "warm",
                _starts_from_file(model_cfg, spec.method, spec.variant))


@dataclass(frozen=True)
class KindPlan:
    """A DAG's nodes grouped by kind: each kind's nodes (the first is its representative) and
    the nodes whose predictions feed some margins rule (margin producers)."""

    nodes: dict[Kind, list[Node]]
    producers: frozenset[Node]

    def representative(self, kind: Kind) -> Node:
        """The node a rehearsal runs for ``kind``: its earliest loop, first in DAG order."""
        return min(self.nodes[kind], key=lambda n: n.loop)

    def produces_margins(self, kind: Kind) -> bool:
        """True when some node of ``kind`` makes margins for another node."""
        return any(n in self.producers for n in self.nodes[kind])


def plan_kinds(model_cfg: Mapping[str, Any], nodes: Iterable[Node]) -> KindPlan:
    """Group ``nodes`` (e.g. :func:`iman.experiments.all_table_nodes`) by :func:`node_kind`."""
    groups: dict[Kind, list[Node]] = {}
    producers = set()
    for node in nodes:
        groups.setdefault(node_kind(model_cfg, node), []).append(node)
        source = margin_source(node)
        if source is not None and source.node is not None:
            producers.add(source.node)
    return KindPlan(groups, frozenset(producers))
