"""Experiments: table rows resolve to specs; specs name training nodes; names parse back.

An *experiment* (one table cell group) is a frozen :class:`Spec`. A *node* is one trained
branch: (run, modality, loop). The node's run name keeps only what can change that
branch's training, so identical training is shared between tables: loop 0 of every
experiment of a method is the single-modality baseline; a ``self`` loop depends only on its
own branch's MMG setting; ``cross`` (IMAN) loops depend on both branches.

Name grammar (one builder, one parser, the fields and enums of :mod:`iman.names`), fields
joined by ``__``::

    {method}.{variant}__{injection}__{frames}__{routing}__us{k}{filter}__ceus{k}{filter}__L{loops}__seed{seed}[fold{fold}]

with ``-`` for a field that does not apply, and no ``L`` field in run names. The ``fold``
suffix appears with k-fold cross-validation (``split.folds`` ≥ 2): fold f's test cases are
fold f of the split; without it the node uses the one hold-out split.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import Any

from iman.models import get_entry
from iman.names import (
    FRAMES_FIELD,
    INJECTION_TAGS,
    MMG_FIELD,
    MODALITIES,
    ROUTINGS,
    SEED_FIELD,
    STRATEGY_TAGS,
    TABLES,
)

__all__ = [
    "ABLATION_TITLES",
    "MarginSource",
    "Node",
    "Spec",
    "all_table_nodes",
    "branch_modalities",
    "curve_specs",
    "experiment_name",
    "experiment_nodes",
    "iman_spec",
    "margin_source",
    "node_for",
    "parent_node",
    "parse_name",
    "row_label",
    "row_title",
    "run_name",
    "runs_of",
    "selected_loops",
    "source_modality",
    "table_comparisons",
    "table_seeds",
    "table_specs",
    "used_models",
]

FROM_OTHER = ("cross", "oracle", "mismatch")
"""Routings whose margins come from the other modality."""
DIAGNOSTIC = ("oracle", "mismatch")
"""Routings that are controls: never used by ``iman predict``."""


@dataclass(frozen=True)
class Spec:
    """One experiment (or, with ``loops=None``, one run's training identity)."""

    method: str
    variant: str
    injection: str = "gate_skips"
    T: int | None = 5
    step: int | None = 3
    strategy: str | None = "middle"
    routing: str = "none"
    mmg_us: tuple[int, str] | None = None
    mmg_ceus: tuple[int, str] | None = None
    loops: int | None = 0
    seed: int = 0
    fold: int | None = None

    def mmg(self, modality: str) -> tuple[int, str] | None:
        """MMG setting of the margins fed to ``modality``'s branch."""
        return self.mmg_us if modality == "us" else self.mmg_ceus


@dataclass(frozen=True)
class MarginSource:
    """What a node's margins are made from (:func:`margin_source`).

    ``kind``: ``pred`` (the MMG on ``node``'s predictions), ``oracle`` (the MMG on the
    ground-truth ``modality`` masks; ``node`` is None) or ``mismatch`` (``node``'s margins,
    each case given another patient's, :func:`iman.data.split.cross_patient_derangement`).
    """

    kind: str
    modality: str
    setting: tuple[int, str]
    node: Node | None = None


@dataclass(frozen=True)
class Node:
    """One trained branch: the run's name, the modality it predicts and the loop."""

    run: str
    modality: str
    loop: int


def _mmg_field(prefix: str, setting: tuple[int, str] | None) -> str:
    return "-" if setting is None else f"{prefix}{setting[0]}{setting[1]}"


def _frames_field(spec: Spec) -> str:
    if spec.T is None:
        return "-"
    return f"T{spec.T}s{spec.step}{STRATEGY_TAGS[spec.strategy or 'middle']}"


def experiment_name(spec: Spec) -> str:
    """Readable, deterministic name; ``loops=None`` gives a run name (no ``L`` field)."""
    fields = [f"{spec.method}.{spec.variant}", INJECTION_TAGS[spec.injection], _frames_field(spec),
              spec.routing, _mmg_field("us", spec.mmg_us), _mmg_field("ceus", spec.mmg_ceus)]
    if spec.loops is not None:
        fields.append(f"L{spec.loops}")
    fields.append(f"seed{spec.seed}" + ("" if spec.fold is None else f"fold{spec.fold}"))
    return "__".join(fields)


run_name = experiment_name

_MMG_RE = re.compile(f"^{MMG_FIELD}$")
_FRAMES_RE = re.compile(f"^{FRAMES_FIELD}$")
_SEED_RE = re.compile(f"^{SEED_FIELD}$")


@functools.cache
def parse_name(name: str) -> Spec:
    """Inverse of :func:`experiment_name` (experiment or run names).

    Cached: a pure function of the name returning a frozen spec, called by several input
    functions of every job of the DAG."""
    parts = name.split("__")
    if len(parts) not in (7, 8):
        raise ValueError(f"not an experiment or run name: {name!r}")
    method, _, variant = parts[0].partition(".")
    inj = {v: k for k, v in INJECTION_TAGS.items()}[parts[1]]
    if parts[3] not in ROUTINGS:
        raise ValueError(f"bad routing field {parts[3]!r} in {name!r}; one of {ROUTINGS}")
    T = step = strategy = None
    if parts[2] != "-":
        m = _FRAMES_RE.match(parts[2])
        if not m:
            raise ValueError(f"bad frames field {parts[2]!r} in {name!r}")
        T, step = int(m[1]), int(m[2])
        strategy = {v: k for k, v in STRATEGY_TAGS.items()}[m[3]]
    mmg = {}
    for field in parts[4:6]:
        if field != "-":
            m = _MMG_RE.match(field)
            if not m:
                raise ValueError(f"bad MMG field {field!r} in {name!r}")
            mmg[m[1]] = (int(m[2]), m[3])
    loops = int(parts[6][1:]) if len(parts) == 8 else None
    seed = _SEED_RE.match(parts[-1])
    if not seed:
        raise ValueError(f"bad seed field {parts[-1]!r} in {name!r}")
    return Spec(method, variant, inj, T, step, strategy, parts[3], mmg.get("us"),
                mmg.get("ceus"), loops, int(seed[1]), None if seed[2] is None else int(seed[2]))


def source_modality(spec: Spec, modality: str) -> str:
    """Which modality makes the margins ``modality`` receives."""
    if spec.routing in FROM_OTHER:
        return "ceus" if modality == "us" else "us"
    return modality


def _consumes_ceus(spec: Spec, modality: str, loop: int) -> bool:
    if modality == "ceus" or "ceus" in get_entry(spec.method).consumed(modality):
        return True
    return spec.routing in FROM_OTHER and loop >= 1


def node_for(spec: Spec, modality: str, loop: int) -> Node:
    """The canonical training node of ``spec``'s ``modality`` branch at ``loop``."""
    keep_frames = _consumes_ceus(spec, modality, loop)
    canon = replace(spec, loops=None)
    if not keep_frames:
        canon = replace(canon, T=None, step=None, strategy=None)
    if loop == 0:
        canon = replace(canon, routing="none", mmg_us=None, mmg_ceus=None)
    elif spec.routing == "self":
        canon = replace(canon, mmg_us=spec.mmg_us if modality == "us" else None,
                        mmg_ceus=spec.mmg_ceus if modality == "ceus" else None)
    return Node(run_name(canon), modality, loop)


def parent_node(node: Node) -> Node:
    """The node whose best weights warm-start ``node`` (same branch, previous loop)."""
    return node_for(parse_name(node.run), node.modality, node.loop - 1)


def margin_source(node: Node) -> MarginSource | None:
    """What ``node``'s margins are made from and the MMG setting to apply.

    None for loop 0 and for the margin-free control (routing ``none`` continued in loops).
    Predicted margins (self, cross, mismatch) come from the source branch's loop ``l − 1``;
    oracle margins from the other modality's ground truth, the same in every loop.
    """
    spec = parse_name(node.run)
    if node.loop == 0 or spec.routing == "none":
        return None
    setting = spec.mmg(node.modality)
    if setting is None:
        raise ValueError(f"{node.run}: no MMG setting for {node.modality}")
    src = source_modality(spec, node.modality)
    if spec.routing == "oracle":
        return MarginSource("oracle", src, setting)
    kind = "mismatch" if spec.routing == "mismatch" else "pred"
    return MarginSource(kind, src, setting, node_for(spec, src, node.loop - 1))


def branch_modalities(spec: Spec) -> tuple[str, ...]:
    """Modalities an experiment reports (its branches)."""
    if spec.routing == "none":
        return get_entry(spec.method).modalities
    return tuple(m for m in MODALITIES if spec.mmg(m) is not None)


def selected_loops(spec: Spec) -> list[int]:
    """Loops among which the reported one is chosen (best validation DSC)."""
    return [0] if not spec.loops else list(range(1, spec.loops + 1))


def experiment_nodes(spec: Spec) -> list[Node]:
    """Nodes an experiment reports from (each branch, each selectable loop), in order."""
    return [node_for(spec, m, loop) for m in branch_modalities(spec)
            for loop in selected_loops(spec)]


# ---- tables ------------------------------------------------------------------------------


def _setting(d: dict[str, Any]) -> tuple[int, str]:
    return (int(d["kernel"]), str(d["filter"]))


def table_seeds(cfg: dict[str, Any], table: str) -> list[int]:
    """Training seeds of ``table``'s rows: ``tables.<table>.seeds`` as a list (null: every
    seed in ``seeds``; n: the first n of them)."""
    want = cfg["tables"][table].get("seeds")
    if want is None:
        return list(cfg["seeds"])
    return list(cfg["seeds"][:want]) if isinstance(want, int) else list(want)


Run = tuple[int, int | None]
"""(seed, fold) of one repetition of a table row (fold None: the hold-out split)."""


def runs_of(cfg: dict[str, Any], table: str | None = None) -> list[Run]:
    """Every (seed, fold) a row of ``table`` is trained on: its seeds × folds (k-fold when
    folds ≥ 2). The seeds are ``tables.<table>.seeds`` (``seeds`` when ``table`` is None)."""
    k = cfg["split"]["folds"]
    folds: list[int | None] = list(range(k)) if k >= 2 else [None]
    seeds = cfg["seeds"] if table is None else table_seeds(cfg, table)
    return [(s, f) for s in seeds for f in folds]


def _base(cfg: dict[str, Any], method: str, run: Run, T: int | None = None) -> Spec:
    variants = cfg["model"]["variants"]
    fr = cfg["frames"]
    return Spec(method, variants.get(method, variants.get("default", "paper")),
                cfg["model"]["injection"], T or fr["T"], fr["step"], fr["strategy"],
                seed=run[0], fold=run[1])


def _ablation_rows(cfg: dict[str, Any], backbone: str, run: Run, control: bool = False,
                   oracle: bool = False, mismatched: bool = False) -> list[tuple[dict, Spec]]:
    """Baseline, MMG, MMG+ITP, IMAN; with ``control`` also the epoch-matched control, with
    ``oracle`` / ``mismatched`` the two diagnostic IMAN rows after IMAN.

    The control (``mmg=0, itp=1``) is the baseline continued for L loops with the same warm
    starts and LR restarts but no margins: it has the epochs of the looped rows, so comparing
    it with them separates "margins help" from "more training helps". The oracle row
    (``modal_fusion=oracle``) runs IMAN's loops on margins made from the other modality's
    ground truth, in training and test (can margins help at all?); the mismatched row
    (``modal_fusion=mismatched``) on another patient's predicted margins (does a gain come
    from the pairing?).
    """
    base = _base(cfg, backbone, run)
    us, ceus, L = _setting(cfg["mmg"]["us"]), _setting(cfg["mmg"]["ceus"]), cfg["iman"]["loops"]
    mmg = replace(base, routing="self", mmg_us=us, mmg_ceus=ceus)
    rows = [
        ({"mmg": 0, "itp": 0, "modal_fusion": 0}, base),
        ({"mmg": 1, "itp": 0, "modal_fusion": 0}, replace(mmg, loops=1)),
        ({"mmg": 1, "itp": 1, "modal_fusion": 0}, replace(mmg, loops=L)),
        ({"mmg": 1, "itp": 1, "modal_fusion": 1}, replace(mmg, routing="cross", loops=L)),
    ]
    if control:
        rows.insert(1, ({"mmg": 0, "itp": 1, "modal_fusion": 0}, replace(base, loops=L)))
    fused = rows[-1][1]
    if oracle:
        rows.append(({"mmg": 1, "itp": 1, "modal_fusion": "oracle"},
                     replace(fused, routing="oracle")))
    if mismatched:
        rows.append(({"mmg": 1, "itp": 1, "modal_fusion": "mismatched"},
                     replace(fused, routing="mismatch")))
    return rows


def table_specs(cfg: dict[str, Any], table: str) -> list[tuple[dict[str, Any], list[Spec]]]:
    """Rows of ``table`` (``table1`` … ``table5``): (row labels, one spec per seed × fold)."""
    runs = runs_of(cfg, table)
    rows: list[tuple[dict[str, Any], list[Spec]]] = []
    t = cfg["tables"]
    backbone = cfg["iman"]["backbone"]
    if table == "table1":
        for method in t["table1"]["methods"]:
            rows.append(({"method": method}, [_base(cfg, method, r) for r in runs]))
        rows.append(({"method": "iman"},
                     [_ablation_rows(cfg, backbone, r)[-1][1] for r in runs]))
    elif table == "table2":
        t2 = t["table2"]
        per_run = [_ablation_rows(cfg, backbone, r, t2["control"], t2["oracle"],
                                  t2["mismatched"]) for r in runs]
        for i, (labels, _) in enumerate(per_run[0]):
            rows.append((labels, [pr[i][1] for pr in per_run]))
    elif table == "table3":
        for T in t["table3"]["frames"]:
            rows.append(({"frames": T}, [_base(cfg, backbone, r, T) for r in runs]))
    elif table == "table4":
        rows.append(({"kernel": "none", "filter": "none"},
                     [_base(cfg, backbone, r) for r in runs]))
        for k in t["table4"]["kernels"]:
            for f in t["table4"]["filters"]:
                us = None if k in t["table4"]["ceus_only_kernels"] else (k, f)
                specs = [replace(_base(cfg, backbone, r), routing="self",
                                 mmg_us=us, mmg_ceus=(k, f), loops=1) for r in runs]
                rows.append(({"kernel": k, "filter": f}, specs))
    elif table == "table5":
        for bb in t["table5"]["backbones"]:
            per_run = [_ablation_rows(cfg, bb, r, t["table5"]["control"]) for r in runs]
            for i, (labels, _) in enumerate(per_run[0]):
                rows.append(({"backbone": bb, **labels}, [pr[i][1] for pr in per_run]))
    else:
        raise ValueError(f"unknown table {table!r}")
    return rows


def all_table_nodes(cfg: dict[str, Any]) -> list[Node]:
    """Every node any configured table reports from, and the earlier loops they build on."""
    nodes: dict[Node, None] = {}
    for table in TABLES:
        for _, specs in table_specs(cfg, table):
            for spec in specs:
                for n in experiment_nodes(spec):
                    for loop in range(n.loop + 1):
                        nodes[node_for(spec, n.modality, loop)] = None
    return list(nodes)


def used_models(cfg: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, variant) of every network any configured table trains."""
    return {(spec.method, spec.variant) for table in TABLES
            for _, specs in table_specs(cfg, table) for spec in specs}


def row_label(labels: dict[str, Any]) -> str:
    """Machine key of a table row from its labels (``backbone=fpn mmg=1 itp=0 ...``): the
    ``row``/``reference`` columns of stats.csv; :func:`row_title` is the name a reader sees."""
    return " ".join(f"{k}={v}" for k, v in labels.items())


ABLATION_TITLES = {
    ("0", "0", "0"): "baseline",
    ("1", "0", "0"): "MMG",
    ("1", "1", "0"): "MMG+ITP",
    ("1", "1", "1"): "IMAN",
    ("0", "1", "0"): "epoch-matched control",
    ("1", "1", "oracle"): "oracle margins (control)",
    ("1", "1", "mismatched"): "mismatched pairs (control)",
}
"""Reader's name of an ablation row (Tables II and V) by its (mmg, itp, modal_fusion)."""


def row_title(labels: dict[str, Any] | str) -> str:
    """The name a reader sees for a table row (``IMAN``, ``FPN: MMG+ITP``, ``T = 5``,
    ``kernel 50, mean filter``), from its labels or its :func:`row_label` key."""
    from iman.models.registry import method_label

    if isinstance(labels, str):
        labels = dict(part.split("=", 1) for part in labels.split())
    lab = {k: str(v) for k, v in labels.items()}
    if "method" in lab:
        return method_label(lab["method"])
    if "frames" in lab:
        return f"T = {lab['frames']}"
    if "kernel" in lab:
        return ("baseline (no MMG)" if lab["kernel"] == "none"
                else f"kernel {lab['kernel']}, {lab['filter']} filter")
    title = ABLATION_TITLES.get((lab.get("mmg"), lab.get("itp"), lab.get("modal_fusion")),
                                row_label(labels))
    return f"{method_label(lab['backbone'])}: {title}" if "backbone" in lab else title


def table_comparisons(cfg: dict[str, Any], table: str
                      ) -> list[tuple[str, str, list[str], list[str]]]:
    """Paired comparisons of a table: (row, reference row, row experiments, reference
    experiments), one experiment per seed (docs/statistics.md).

    Table I: every method vs IMAN; Tables II, IV, V: every row vs its backbone's baseline row
    (the table's reference row, always the first comparison of a row); Table II also MMG+ITP
    vs the epoch-matched control, IMAN vs MMG+ITP, and IMAN vs the oracle and vs the mismatched
    control; Table III: each frame count vs T = 1 (when configured).
    """
    rows = [(labels, [experiment_name(s) for s in specs])
            for labels, specs in table_specs(cfg, table)]
    out: list[tuple[str, str, list[str], list[str]]] = []

    def add(row: tuple[dict, list[str]], ref: tuple[dict, list[str]]) -> None:
        out.append((row_label(row[0]), row_label(ref[0]), row[1], ref[1]))

    def find(group: list, **want: Any) -> tuple[dict, list[str]] | None:
        return next((r for r in group if all(r[0].get(k) == v for k, v in want.items())), None)

    if table == "table1":
        for row in rows[:-1]:
            add(row, rows[-1])
    elif table == "table3":
        one = find(rows, frames=1)
        for row in rows:
            if one is not None and row is not one:
                add(row, one)
    else:
        groups: dict[Any, list] = {}
        for row in rows:
            groups.setdefault(row[0].get("backbone"), []).append(row)
        for group in groups.values():
            base = group[0]  # the baseline row comes first (Table IV: no kernel)
            for row in group[1:]:
                add(row, base)
            if table == "table2":
                itp = find(group, mmg=1, itp=1, modal_fusion=0)
                control = find(group, mmg=0, itp=1)
                fused = find(group, mmg=1, itp=1, modal_fusion=1)
                if itp and control:
                    add(itp, control)
                if fused and itp:
                    add(fused, itp)
                for kind in ("oracle", "mismatched"):
                    diag = find(group, modal_fusion=kind)
                    if diag and fused:
                        add(fused, diag)
    return out


def iman_spec(cfg: dict[str, Any]) -> Spec:
    """The IMAN experiment of Table I (first seed)."""
    return table_specs(cfg, "table1")[-1][1][0]


def curve_specs(cfg: dict[str, Any], table: str) -> list[tuple[str, Spec]]:
    """(panel label, spec) of the looped ablation rows of Table II or V (first seed)."""
    out = []
    for labels, specs in table_specs(cfg, table):
        spec = specs[0]
        if spec.loops:
            tag = ("control (no margins)" if spec.routing == "none"
                   else "MMG" if spec.loops == 1
                   else "IMAN" if spec.routing == "cross"
                   else "oracle margins (control)" if spec.routing == "oracle"
                   else "mismatched pairs (control)" if spec.routing == "mismatch"
                   else "MMG+ITP")
            out.append((f"{labels.get('backbone', spec.method)} {tag}", spec))
    return out
