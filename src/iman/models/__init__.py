"""Segmentation methods behind one registry of cards read from the ``iman.methods`` entry
points (see :mod:`iman.models.registry`; in-tree cards: :mod:`iman.models.cards`).

Importing this package imports no model code and no torch.
"""

from iman.models.registry import (
    INJECTIONS,
    MethodCard,
    PluginError,
    UnknownModelError,
    all_entries,
    broken_plugins,
    build_model,
    count_parameters,
    get_entry,
    method_label,
    source_of,
)

__all__ = [
    "INJECTIONS",
    "MethodCard",
    "PluginError",
    "UnknownModelError",
    "all_entries",
    "broken_plugins",
    "build_model",
    "count_parameters",
    "get_entry",
    "method_label",
    "source_of",
]
