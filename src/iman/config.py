"""Resolve and validate the workflow configuration against its JSON schema.

The config is the experiment. :func:`resolve_config` is the one layering rule, used by the
Snakefile and by ``iman config``: schema defaults (the paper protocol), then the named config
file(s) in order, then ``--config`` overrides, never a value from a file the user did not
name. ``--config`` values arrive as strings (Snakemake parses nested values with YAML's
BaseLoader); they are coerced by the schema's types and still rejected when they do not parse.
Every problem is collected and reported at once, each naming the key (dotted path).
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from iman.errors import UserError

__all__ = ["DEMO_CONFIG", "SCHEMA_PATH", "ConfigError", "coerce_overrides", "dump_config",
           "load_config", "method_train", "resolve_config", "validate_config"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEMO_CONFIG = PROJECT_ROOT / "config" / "config.yaml"
"""The embedded demo: the config a run uses when no ``--configfile`` is named."""


class ConfigError(UserError, ValueError):
    """The configuration is invalid; the message lists every problem."""


@functools.cache
def _schema() -> dict[str, Any]:
    """The config schema, parsed once per process (read-only: callers never mutate it)."""
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _fill_defaults(node: dict[str, Any], schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Recursively set schema defaults for absent keys (objects default to {})."""
    for key, sub in schema.get("properties", {}).items():
        if "$ref" in sub:
            sub = {**_resolve(root, sub["$ref"]), **{k: v for k, v in sub.items() if k != "$ref"}}
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub, root)


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _describe(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        where = path if path != "<top level>" else "top level"
        return f"unknown key(s) {extra} under {where}; allowed keys: {allowed}"
    if err.validator == "enum":
        return (f"config key '{path}': {err.instance!r} is not allowed; "
                f"allowed values: {err.validator_value}")
    return f"config key '{path}': {err.message}"


def _errors(config: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        yield _describe(err)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled; raise ConfigError."""
    schema = _schema()
    filled = copy.deepcopy(config) if config else {}
    problems = list(_errors(filled, schema))
    if not problems:
        _fill_defaults(filled, schema, schema)
        problems = list(_errors(filled, schema)) + _semantic_problems(filled)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return _ordered(filled, schema, schema)


def _expand_table_seeds(cfg: dict[str, Any]) -> None:
    """Record every table's seeds as an explicit list (the resolved config says what ran)."""
    from iman.experiments import table_seeds

    for table, settings in cfg["tables"].items():
        settings["seeds"] = table_seeds(cfg, table)


def _ordered(node: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """``node`` with its keys in schema order (so a resolved config reads like the schema)."""
    if "$ref" in schema:
        schema = {**_resolve(root, schema["$ref"]), **schema}
    if not isinstance(node, dict):
        return node
    props = schema.get("properties", {})
    keys = [k for k in props if k in node] + [k for k in node if k not in props]
    return {k: _ordered(node[k], props.get(k, {}), root) for k in keys}


def _semantic_problems(cfg: dict[str, Any]) -> list[str]:
    """Checks a schema cannot express (cross-key rules, registry names)."""
    problems = []
    if cfg["dataset"]["source"] != "phantom" and not cfg["dataset"]["root"]:
        problems.append("config key 'dataset.root': required when dataset.source is "
                        f"{cfg['dataset']['source']!r}")
    if cfg["split"]["folds"] == 2:
        problems.append("config key 'split.folds': 2 leaves no training cases (fold i tests, "
                        "fold i+1 validates, the rest trains): use 1 (hold-out) or >= 3")
    if cfg["split"]["sizes"] and (cfg["split"]["folds"] >= 2 or cfg["split"]["use_source_split"]):
        problems.append("config key 'split.sizes': fixed train/val sizes apply to the hold-out "
                        "split only (not with split.folds >= 2 or split.use_source_split)")
    if cfg["split"]["folds"] >= 2 and cfg["split"]["use_source_split"]:
        problems.append("config key 'split.folds': k-fold cross-validation and "
                        "split.use_source_split exclude each other")
    for table, settings in cfg["tables"].items():
        n = settings.get("seeds")
        if isinstance(n, int) and n > len(cfg["seeds"]):
            problems.append(f"config key 'tables.{table}.seeds': {n} seeds asked, but `seeds` "
                            f"lists {len(cfg['seeds'])} ({cfg['seeds']}): lower it or add seeds")
    wanted = [("iman.backbone", cfg["iman"]["backbone"])]
    wanted += [("tables.table1.methods", m) for m in cfg["tables"]["table1"]["methods"]]
    wanted += [("tables.table5.backbones", m) for m in cfg["tables"]["table5"]["backbones"]]
    wanted += [("model.variants", m) for m in cfg["model"]["variants"] if m != "default"]
    wanted += [("train.methods", m) for m in cfg["train"]["methods"]]
    named = _method_problems(wanted)
    return (problems + named + _loss_problems(cfg["train"])
            + ([] if named else _model_problems(cfg)))


def _loss_problems(train: dict[str, Any]) -> list[str]:
    """Loss names (``train.loss`` and each recipe's) missing from the loss registry."""
    from iman.training.settings import LOSSES

    named = [("train.loss", train["loss"])] + [
        (f"train.methods.{m}.loss", r["loss"]) for m, r in train["methods"].items() if "loss" in r]
    return [f"config key '{key}': unknown loss {name!r}; known losses: {sorted(LOSSES)}"
            for key, name in named if name not in LOSSES]


def _model_problems(cfg: dict[str, Any]) -> list[str]:
    """Every trained (method, variant) that its job would refuse: an unknown variant, or an
    input size the method's card rules out (``MethodCard.size_problem``)."""
    from iman.experiments import used_models
    from iman.models.registry import get_entry

    size, problems = cfg["data"]["size"], []
    for method, variant in sorted(used_models(cfg)):
        card = get_entry(method)
        if variant not in card.variants:
            problems.append(f"config key 'model.variants': method {method!r} has no variant "
                            f"{variant!r}; its variants: {', '.join(card.variants)}")
        elif (why := card.size_problem(variant, size)) is not None:
            problems.append(f"config key 'data.size': {why}; change data.size or "
                            f"model.variants.{method}")
    return problems


def _method_problems(wanted: list[tuple[str, str]]) -> list[str]:
    """Unknown or broken method names (the installed ``iman.methods`` entry points), each
    with its key; the valid names and their packages once, after them."""
    from iman.models.registry import PluginError, UnknownModelError, get_entry, valid_methods

    problems, unknown = [], False
    for key, name in wanted:
        try:
            get_entry(name)
        except UnknownModelError:
            problems.append(f"config key '{key}': unknown method {name!r}")
            unknown = True
        except PluginError as err:
            problems.append(f"config key '{key}': {err}")
    return problems + ([f"valid methods: {valid_methods()}"] if unknown else [])


def method_train(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    """``train`` settings of one method: the global ones with its ``train.methods`` recipe."""
    t = {k: v for k, v in cfg["train"].items() if k != "methods"}
    recipe = cfg["train"].get("methods", {}).get(method, {})
    return {**t, **recipe, "augment": {**t["augment"], **recipe.get("augment", {})}}


def _merge(base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``new`` into ``base`` (mappings merge key by key, anything else replaces)."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = _plain(value)
    return base


def _plain(value: Any) -> Any:
    """Plain dicts/lists (Snakemake hands over immutable maps and tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_TRUE, _FALSE, _NULL = ("true", "yes", "on"), ("false", "no", "off"), ("null", "~", "none")


def _coerce_scalar(value: str, types: list[str]) -> Any:
    """``value`` as the first schema type it parses as; unchanged when none fits."""
    text = value.strip()
    for t in types:
        try:
            if t == "integer" and re.fullmatch(r"[+-]?\d+", text):
                return int(text)
            if t == "number":
                number = float(text)
                if math.isfinite(number):
                    return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
            if t == "boolean" and text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            if t == "null" and text.lower() in _NULL:
                return None
        except ValueError:
            continue
    return value


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None and "enum" in schema:  # an enum of numbers coerces like its values
        kinds = {type(v) for v in schema["enum"]}
        t = ["integer"] if kinds == {int} else ["number"] if kinds <= {int, float} else []
    types = t if isinstance(t, list) else [t] if t else []
    return [x for x in types if x != "string"] + [x for x in types if x == "string"]


def _coerce(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in schema:
        schema = {**_resolve(root, schema["$ref"]),
                  **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(value, Mapping):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        return {k: _coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), root)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        if isinstance(value, tuple) or "array" in _types(schema) or "items" in schema:
            return [_coerce(v, schema.get("items", {}), root) for v in value]
        return list(value)
    if isinstance(value, str):
        return _coerce_scalar(value, _types(schema))
    return value


def coerce_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``--config`` values (strings from YAML's BaseLoader) as the schema's types."""
    schema = _schema()
    return _coerce(_plain(overrides or {}), schema, schema)


def resolve_config(configfiles: Sequence[str | Path] = (),
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one layering rule: schema defaults, then each config file, then ``overrides``.

    Nothing else leaks in: a key no named file sets takes its schema default (the paper
    protocol). Returns the validated config with every default filled and every table's
    seeds as an explicit list (:func:`iman.experiments.table_seeds`); raises ConfigError.
    """
    cfg: dict[str, Any] = {}
    for path in configfiles:
        try:
            with open(path) as fh:
                loaded = yaml.safe_load(fh) or {}
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys at the top")
        _merge(cfg, loaded)
    _merge(cfg, coerce_overrides(overrides))
    resolved = validate_config(cfg)
    _expand_table_seeds(resolved)
    return resolved


def dump_config(cfg: Mapping[str, Any]) -> str:
    """The resolved config as YAML (schema key order kept)."""
    return yaml.safe_dump(_plain(cfg), sort_keys=False, default_flow_style=None, width=100)


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One config file over the schema defaults (plus optional overrides), validated."""
    return resolve_config([path], overrides)
