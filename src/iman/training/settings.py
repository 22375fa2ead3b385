"""Training settings, declared once: :class:`TrainConfig`.

Each field's metadata says where its value comes from: :data:`TRAIN` is the config key
``train.<field>`` (after the method's ``train.methods`` recipe), :data:`NODE` is derived from
the node's name and the ``data``/``model`` sections, :data:`RUNTIME` is a machine setting or a
label. The node protocol (the train rule's ``params``,
:func:`iman.training.node.node_protocol`) records every field that is not ``RUNTIME``, in field
order, so a new training key is one field here plus its schema entry (tests tie the two
together; :data:`NOT_SETTINGS` names the schema keys that are not fields). A key added after
nodes were trained is an :data:`ADDED` field: the protocol records it only when it differs from
its default, so adding it retrains nothing trained before. The loss registry (:data:`LOSSES`)
is light data, like the method cards: torch is imported only when a trainer builds its loss.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any

__all__ = ["ADDED", "LOSSES", "NODE", "NOT_SETTINGS", "RUNTIME", "TRAIN", "TrainConfig",
           "protocol_fields", "recorded", "train_keys"]

LOSSES: dict[str, str] = {
    "dice": "iman.training.losses:SegLoss.from_config",
}
"""Loss registry (config ``train.loss``): name → ``"module:factory"``, the factory called with
the :class:`TrainConfig` and returning ``loss(logits, target) -> Tensor``. ``dice``: the
paper's Dice loss (Eq. 1), plus ``bce_weight`` × BCE-with-logits when that is above 0."""

NOT_SETTINGS: dict[str, str] = {
    "methods": "per-method recipes: merged into each node's train settings "
               "(iman.config.method_train), not a setting of its own",
    "loop_lr_decay": "folded into lr: loop l starts at lr * loop_lr_decay**l",
    "loop_max_epochs": "folded into max_epochs (and min_epochs) of loops l >= 1",
    "loop_patience": "folded into patience of loops l >= 1",
}
"""The schema's ``train.*`` keys that are not :class:`TrainConfig` fields, and why."""


NODE: dict[str, Any] = {"source": "node", "added": False}
"""Field metadata: derived from the node's name and the ``data``/``model`` sections."""
TRAIN: dict[str, Any] = {"source": "train", "added": False}
"""Field metadata: the config key ``train.<field>``."""
ADDED: dict[str, Any] = {"source": "train", "added": True}
"""Field metadata: a ``train`` key added after nodes were trained (recorded when set)."""
RUNTIME: dict[str, Any] = {"source": "runtime", "added": False}
"""Field metadata: a machine setting or a label, never in the protocol."""


@dataclass
class TrainConfig:
    """Everything that defines one training run of one branch and loop (the ``train``
    defaults equal the schema's; a new ``train`` key: an :data:`ADDED` field at the end of
    the ``train`` fields)."""

    model: str = field(metadata=NODE)
    variant: str = field(metadata=NODE)
    in_channels: dict[str, int] = field(metadata=NODE)
    img_size: int = field(metadata=NODE)
    injection: str = field(default="gate_skips", metadata=NODE)
    weights: str | None = field(default=None, metadata=NODE)
    weights_sha256: str | None = field(default=None, metadata=NODE)  # the file's content
    norm: str = field(default="grey", metadata=NODE)
    max_epochs: int = field(default=300, metadata=TRAIN)
    min_epochs: int = field(default=1, metadata=TRAIN)
    batch_size: int = field(default=16, metadata=TRAIN)
    lr: float = field(default=1e-4, metadata=TRAIN)  # times loop_lr_decay**loop
    min_lr: float = field(default=5e-5, metadata=TRAIN)  # at most lr
    weight_decay: float = field(default=5e-4, metadata=TRAIN)
    patience: int = field(default=50, metadata=TRAIN)
    converge_eps: float = field(default=1e-5, metadata=TRAIN)
    converge_window: int = field(default=3, metadata=TRAIN)
    bce_weight: float = field(default=0.0, metadata=TRAIN)
    augment: dict[str, float] = field(default_factory=dict, metadata=TRAIN)
    seed: int = field(default=0, metadata=NODE)
    amp: bool = field(default=True, metadata=TRAIN)
    loss: str = field(default="dice", metadata=ADDED)
    threads: int = field(default=1, metadata=RUNTIME)
    meta: dict[str, Any] = field(default_factory=dict, metadata=RUNTIME)


def protocol_fields() -> list[Field]:
    """The fields a node protocol records, in protocol order (every non-runtime field)."""
    return [f for f in fields(TrainConfig) if f.metadata["source"] != "runtime"]


def train_keys() -> list[str]:
    """The fields whose value is the config key ``train.<name>``."""
    return [f.name for f in fields(TrainConfig) if f.metadata["source"] == "train"]


def recorded(f: Field, value: Any) -> bool:
    """Whether the protocol records ``value`` of ``f`` (an ``added`` field: only when set)."""
    return not (f.metadata["added"] and value == f.default)
