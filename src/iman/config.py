"""Load and validate the workflow configuration against its JSON schema.

Defaults from the schema are filled in, then every problem is collected and reported at
once, each naming the key (dotted path) and what is allowed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["SCHEMA_PATH", "ConfigError", "load_config", "validate_config"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem."""


def _schema() -> dict[str, Any]:
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
    return filled


def _semantic_problems(cfg: dict[str, Any]) -> list[str]:
    """Checks a schema cannot express (cross-key rules, registry names)."""
    from iman.models import all_entries

    problems = []
    if cfg["dataset"]["source"] != "phantom" and not cfg["dataset"]["root"]:
        problems.append("config key 'dataset.root': required when dataset.source is "
                        f"{cfg['dataset']['source']!r}")
    if cfg["split"]["fold"] >= cfg["split"]["folds"]:
        problems.append(f"config key 'split.fold': {cfg['split']['fold']} must be < split.folds")
    names = sorted(e.name for e in all_entries())
    wanted = [("iman.backbone", cfg["iman"]["backbone"])]
    wanted += [("tables.table1.methods", m) for m in cfg["tables"]["table1"]["methods"]]
    wanted += [("tables.table5.backbones", m) for m in cfg["tables"]["table5"]["backbones"]]
    wanted += [("model.variants", m) for m in cfg["model"]["variants"] if m != "default"]
    for key, name in wanted:
        if name not in names:
            problems.append(f"config key '{key}': unknown model {name!r}; registered: {names}")
    return problems


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config (plus optional overrides) and validate it."""
    with open(path) as fh:
        cfg = yaml.safe_load(fh) or {}
    for key, value in (overrides or {}).items():
        cfg[key] = value
    return validate_config(cfg)
