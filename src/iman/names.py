"""The workflow's names: enums, the name grammar's field patterns and the named-input keys.

One module owns them, and imports nothing heavier than ``re``: :mod:`iman.experiments`
builds and parses experiment and run names from these fields, the Snakefile builds its
``wildcard_constraints`` from :data:`WILDCARD_CONSTRAINTS` (a method field is any name of
the method-name grammar, :data:`METHOD_NAME`: plug-ins are installed, not listed here; config
validation checks names against the installed methods), and a rule's input function
and the library function it feeds build each named-input key with the same function here
(:func:`node_key`, :func:`summary_key`, :func:`per_case_key`, :func:`pred_key`).

Name grammar (fields joined by ``__``; ``-`` for a field that does not apply; no ``L`` field
in run names; the ``fold`` suffix only with k-fold cross-validation)::

    {method}.{variant}__{injection}__{frames}__{routing}__us{k}{filter}__ceus{k}{filter}__L{loops}__seed{seed}[fold{fold}]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iman.experiments import Node

__all__ = [
    "FILTERS",
    "INJECTIONS",
    "INJECTION_TAGS",
    "LAYOUT_NAMES",
    "METHOD_NAME",
    "METHOD_NAMES",
    "MODALITIES",
    "ROUTINGS",
    "STRATEGIES",
    "STRATEGY_TAGS",
    "TABLES",
    "WILDCARD_CONSTRAINTS",
    "node_key",
    "per_case_key",
    "pred_key",
    "summary_key",
]

METHOD_NAMES = ("unet", "fpn", "unetpp", "deeplabv3", "transunet", "swinunet", "aaunet",
                "nunet", "usseg", "ggnet", "dcnet", "dpran", "ceusegnet")
"""The in-tree methods, in table order (a test checks it equals the in-tree ``iman.methods``
entry points; plug-ins add theirs, :func:`iman.models.registry.all_entries`)."""
METHOD_NAME = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
"""The grammar of a method name, in-tree or plug-in (lower case, digits, single ``_``: a name
is a field of run names, which join fields with ``__``); a card breaking it is rejected."""
MODALITIES = ("us", "ceus")
ROUTINGS = ("none", "self", "cross", "oracle", "mismatch")
"""Where a branch's margins come from in loops >= 1: none (the epoch-matched control), its own
predictions (self), the other modality's predictions (cross, IMAN), and two diagnostics that
are table rows, never methods: the other modality's ground truth (oracle, an upper bound) and
the other modality's predictions for a different patient (mismatch, a negative control)."""
FILTERS = ("none", "mean", "gaussian")
"""MMG filters (config ``mmg.*.filter``, Table IV ``filters``)."""
STRATEGIES = ("middle", "keyframes")
"""CEUS frame-selection strategies (config ``frames.strategy``)."""
TABLES = ("table1", "table2", "table3", "table4", "table5")
INJECTION_TAGS = {"gate_skips": "gate", "input_channel": "chan"}
INJECTIONS = tuple(INJECTION_TAGS)
"""Margin injection modes (``model.injection``)."""
LAYOUT_NAMES = ("sheet", "iman_public")
"""Dataset layouts a reader exists for (:data:`iman.data.ingest.layouts.LAYOUTS`)."""
"""Injection → its field in a name."""
STRATEGY_TAGS = {"middle": "mid", "keyframes": "key"}
"""Frame strategy → its tag in a name's frames field."""


def _any(values: Iterable[str]) -> str:
    """A regex alternation of ``values``."""
    return "|".join(re.escape(v) for v in values)


METHOD_FIELD = rf"{METHOD_NAME}\.[a-z0-9_]+"
"""``{method}.{variant}``."""
INJECTION_FIELD = rf"(?:{_any(INJECTION_TAGS.values())})"
FRAMES_FIELD = rf"T(\d+)s(\d+)({_any(STRATEGY_TAGS.values())})"
"""``T{T}s{step}{strategy tag}`` (groups: T, step, tag)."""
ROUTING_FIELD = rf"(?:{_any(ROUTINGS)})"
MMG_FIELD = rf"({_any(MODALITIES)})(\d+)({_any(FILTERS)})"
"""``{modality}{kernel}{filter}`` (groups: modality, kernel, filter)."""
LOOPS_FIELD = r"L\d+"
SEED_FIELD = r"seed(\d+)(?:fold(\d+))?"
"""``seed{seed}[fold{fold}]`` (groups: seed, fold)."""


def _plain(pattern: str) -> str:
    """``pattern`` with its capturing groups made non-capturing (for Snakemake)."""
    return re.sub(r"\((?!\?)", "(?:", pattern)


def _name_pattern(loops: bool) -> str:
    fields = [METHOD_FIELD, INJECTION_FIELD, rf"(?:-|{FRAMES_FIELD})", ROUTING_FIELD,
              rf"(?:-|{MMG_FIELD})", rf"(?:-|{MMG_FIELD})"]
    if loops:
        fields.append(LOOPS_FIELD)
    return _plain("__".join([*fields, SEED_FIELD]))


RUN_RE = _name_pattern(loops=False)
"""A run name (no ``L`` field); never holds ``/``."""
EXPERIMENT_RE = _name_pattern(loops=True)
"""An experiment name."""

WILDCARD_CONSTRAINTS = {
    "run": RUN_RE,
    "exp": EXPERIMENT_RE,
    "modality": _any(MODALITIES),
    "loop": r"\d+",
    "kernel": r"\d+",
    "filter": _any(FILTERS),
    "table": _any(TABLES),
    "strategy": _any(STRATEGIES),
}
"""The Snakefile's ``wildcard_constraints``, one per wildcard of the path grammar."""


# ---- named-input keys: the rule's input function and the library use the same builder ----


def node_key(node: Node, kind: str) -> str:
    """Key of a node's file among a job's named inputs (``us_loop1_metrics``)."""
    return f"{node.modality}_loop{node.loop}_{kind}"


def summary_key(owner: str) -> str:
    """Key of an experiment's ``summary.json`` (``owner``: its name or a method's row)."""
    return f"summary:{owner}"


def per_case_key(owner: str) -> str:
    """Key of an experiment's ``per_case.csv`` (``owner``: its name or a method's row)."""
    return f"per_case:{owner}"


def pred_key(owner: str, node: Node) -> str:
    """Key of a node's ``pred.npz`` among several experiments' (``owner``: a method's row)."""
    return f"pred:{owner}:{node_key(node, 'pred')}"
