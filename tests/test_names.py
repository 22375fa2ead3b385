"""iman.names: the static method list, the enums, the grammar's patterns and the input keys."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iman.config import DEMO_CONFIG, SCHEMA_PATH, resolve_config
from iman.experiments import (
    Node,
    all_table_nodes,
    experiment_name,
    parse_name,
    table_specs,
)
from iman.names import (
    EXPERIMENT_RE,
    FILTERS,
    METHOD_NAMES,
    ROUTINGS,
    RUN_RE,
    STRATEGIES,
    TABLES,
    WILDCARD_CONSTRAINTS,
    node_key,
    per_case_key,
    pred_key,
    summary_key,
)


def _schema_enums(key: str) -> list[list]:
    """Every ``enum`` list under a property named ``key`` in the config schema."""
    found: list[list] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key and isinstance(v, dict):
                    items = v.get("items", v)
                    if "enum" in items:
                        found.append(items["enum"])
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(SCHEMA_PATH.read_text()))
    return found


def test_method_names_are_the_in_tree_entry_points() -> None:
    from importlib.metadata import entry_points

    from iman.models import all_entries, source_of

    declared = [ep.name for ep in entry_points(group="iman.methods")
                if ep.dist is not None and ep.dist.name == "iman"]
    assert sorted(declared) == sorted(METHOD_NAMES)
    # in-tree first, in METHOD_NAMES order (the order of `iman models` and the tables)
    names = [e.name for e in all_entries()]
    assert tuple(names[:len(METHOD_NAMES)]) == METHOD_NAMES
    assert not any(source_of(n).in_tree for n in names[len(METHOD_NAMES):])


def test_schema_enums_are_the_names() -> None:
    filters = _schema_enums("filter") + _schema_enums("filters")
    assert len(filters) >= 2 and all(tuple(e) == FILTERS for e in filters)
    strategies = _schema_enums("strategy")
    assert strategies and all(tuple(e) == STRATEGIES for e in strategies)


def test_config_validation_imports_no_model() -> None:
    code = ("import sys; from iman.config import DEMO_CONFIG, resolve_config; "
            "resolve_config([DEMO_CONFIG], {}); "
            "print(sorted(m for m in ('torch', 'timm', 'segmentation_models_pytorch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_configured_name_matches_the_wildcard_patterns() -> None:
    cfg = resolve_config([DEMO_CONFIG], {"split": {"folds": 3, "sizes": None}, "seeds": [0, 1]})
    names = {experiment_name(s) for t in TABLES for _, specs in table_specs(cfg, t)
             for s in specs}
    assert names and all(re.fullmatch(EXPERIMENT_RE, n) for n in names)
    assert not any(re.fullmatch(RUN_RE, n) for n in names)  # an L field: not a run
    runs = {n.run for n in all_table_nodes(cfg)}
    assert runs and all(re.fullmatch(RUN_RE, r) for r in runs)
    assert all(parse_name(r).routing in ROUTINGS for r in runs)
    assert all(re.fullmatch(WILDCARD_CONSTRAINTS["run"], r) for r in runs)
    assert not any("/" in r for r in runs)


def test_the_patterns_reject_what_parse_name_rejects() -> None:
    good = "unet.demo__gate__-__none__-__-__seed0"
    assert re.fullmatch(RUN_RE, good) and parse_name(good).routing == "none"
    for bad in ("unet.demo__gate__-__sideways__-__-__seed0",  # unknown routing
                "No_Net.demo__gate__-__none__-__-__seed0",  # not a method name
                "unet.demo__gate__-__none__us5median__-__seed0"):  # unknown filter
        assert not re.fullmatch(RUN_RE, bad)
    with pytest.raises(ValueError, match="routing"):
        parse_name("unet.demo__gate__-__sideways__-__-__seed0")


def test_input_keys_are_distinct_per_kind() -> None:
    node = Node("r", "us", 1)
    assert node_key(node, "pred") == "us_loop1_pred"
    keys = [summary_key("unet"), per_case_key("unet"), pred_key("unet", node),
            node_key(node, "pred")]
    assert len(set(keys)) == len(keys)
    assert summary_key("a") != summary_key("b") and pred_key("a", node) != pred_key("b", node)


def test_enums_live_in_names_and_the_readers_and_registry_use_them() -> None:
    from iman.data.ingest.layouts import LAYOUTS
    from iman.models import registry
    from iman.names import INJECTIONS, LAYOUT_NAMES, MODALITIES

    assert tuple(LAYOUTS) == LAYOUT_NAMES  # one reader per layout name, and no other
    assert registry.INJECTIONS is INJECTIONS and registry.MODALITIES is MODALITIES


def test_no_modality_tuple_outside_names() -> None:
    # docs/contracts.md: iman.names owns the enums; a literal ("us", "ceus") elsewhere drifts
    root = Path(__file__).resolve().parents[1]
    found = [f"{p.relative_to(root)}:{i}" for base in ("src", "workflow")
             for p in (root / base).rglob("*.py") if p.name != "names.py"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if '("us", "ceus")' in line or "['us', 'ceus']" in line or '["us", "ceus"]' in line]
    assert not found, found


def test_rule_scripts_pass_keyword_arguments_to_their_library_function() -> None:
    # issue 28 §5: same-typed values passed by position swap unnoticed (split.py's seed and
    # folds, train.py's eight paths); every rule script names each argument
    import ast

    root = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    positional = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            # the log, the function, then keywords only
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_logged"
                    and len(node.args) > 2):
                positional.append(path.name)
    assert not positional, positional
