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
    """Every registered model, in registration order."""
    from iman.models.registry import _load_all

    _load_all()
    return list(REGISTRY.values())
