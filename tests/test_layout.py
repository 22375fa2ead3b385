"""The code layout: imports flow one way (issue 28 §4). Stages in data-flow order
(README "code layout"); a stage may import an earlier one and the glue (config, names, paths,
errors, experiments, provenance), never a later one, and no module imports itself back
through others. Type-only imports (``if TYPE_CHECKING:``) run nothing and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iman"
STAGES = ("data", "models", "training", "margins", "evaluation", "reporting")
"""The stage packages of ``src/iman`` in the order the data flows through them."""


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        name = "iman." + ".".join(p.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _imports() -> dict[str, set[str]]:
    """Module -> the iman modules it imports (at any depth, type-only imports excluded)."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name not in mods:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("iman"):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("iman")]
            for name in names:
                target = owner(name)
                if target and target not in (mod, "iman"):
                    edges[mod].add(target)
    return edges


def _stage(module: str) -> str | None:
    part = module.split(".")[1] if "." in module else ""
    return part if part in STAGES else None


def test_no_stage_imports_a_later_stage() -> None:
    upward = [(m, t) for m, targets in _imports().items() for t in targets
              if _stage(m) and _stage(t) and STAGES.index(_stage(t)) > STAGES.index(_stage(m))]
    assert not upward, upward


def test_the_import_graph_has_no_circle() -> None:
    edges = _imports()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        path.append(mod)
        for nxt in sorted(edges[mod]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[mod] = 2

    for mod in sorted(edges):
        if mod not in state:
            visit(mod, [])
    assert not circles, circles


def test_the_check_finds_a_planted_upward_import(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # control: the same scan over a copy with data importing the (later) margins stage
    import shutil

    copy = tmp_path / "iman"
    shutil.copytree(SRC, copy)
    planted = copy / "data" / "geometry.py"
    planted.write_text(planted.read_text() + "\nfrom iman.margins.mmg import margin_mask\n")
    monkeypatch.setattr(__import__(__name__), "SRC", copy)
    assert "iman.margins.mmg" in _imports()["iman.data.geometry"]
    with pytest.raises(AssertionError, match="iman.data.geometry"):
        test_no_stage_imports_a_later_stage()
