"""Segmentation models behind one registry (see :mod:`iman.models.registry`)."""

from iman.models.registry import (
    INJECTIONS,
    REGISTRY,
    ModelEntry,
    UnknownModelError,
    build_model,
    count_parameters,
    get_entry,
    register,
)

# Modules whose import registers models. Order = the order `iman models` lists them.
MODEL_MODULES = (
    "smp_models",
    "transunet",
    "swinunet",
    "aaunet",
    "nunet",
    "usseg",
    "ggnet",
    "dcnet",
    "dpran",
    "ceusegnet",
)

__all__ = [
    "INJECTIONS",
    "MODEL_MODULES",
    "REGISTRY",
    "ModelEntry",
    "UnknownModelError",
    "build_model",
    "count_parameters",
    "get_entry",
    "register",
]


def all_entries() -> list[ModelEntry]:
    """Every registered model, in the order of :data:`iman.names.METHOD_NAMES` (the order of
    ``iman models`` and the tables; not the import order, which depends on what ran first)."""
    from iman.models.registry import _load_all
    from iman.names import METHOD_NAMES

    _load_all()
    rank = {name: i for i, name in enumerate(METHOD_NAMES)}
    return sorted(REGISTRY.values(), key=lambda e: rank.get(e.name, len(rank)))
