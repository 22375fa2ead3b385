"""Methods as plug-ins: the ``iman.methods`` entry points, the example plug-in
(``examples/iman-plugin-example``, installed into the test environment by ``make venv``),
and broken or missing plug-ins as real distributions installed into a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import snakemake
from test_workflow import _scheduled, _table_nodes, _trained

from iman.cli import main
from iman.models import PluginError, UnknownModelError, build_model, count_parameters, get_entry
from iman.models.registry import MethodCard, _card_problems, source_of
from iman.names import METHOD_NAMES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE, EXAMPLE_PACKAGE, EXAMPLE_LABEL = "example_unet", "iman-plugin-example", \
    "Example U-net (plug-in)"
HEAVY = ("torch", "timm", "segmentation_models_pytorch", "iman_plugin_example.net")


@pytest.fixture(scope="module")
def example() -> MethodCard:
    """The example plug-in's card; its absence is a setup fault, not a skip."""
    try:
        return get_entry(EXAMPLE)
    except UnknownModelError:
        pytest.fail(f"the example plug-in is not installed: pip install -e "
                    f"examples/{EXAMPLE_PACKAGE} (make venv does it)")


def _python(code: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment (``pythonpath`` first)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_reading_every_card_and_the_snakefile_helpers_import_no_torch(example) -> None:
    """Config validation, experiments, node protocols and every card (the plug-in's too):
    no torch, no model module, no plug-in network."""
    out = _python(f"""
        import sys
        from iman.config import DEMO_CONFIG, resolve_config
        from iman.experiments import all_table_nodes
        from iman.models import all_entries
        from iman.training.node import node_protocol
        cfg = resolve_config([DEMO_CONFIG], {{"iman": {{"backbone": "{EXAMPLE}"}}}})
        names = [c.name for c in all_entries()]
        protocols = [node_protocol(cfg, n) for n in all_table_nodes(cfg)]
        assert "{EXAMPLE}" in names and protocols
        assert "iman_plugin_example.cards" in sys.modules
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_example_is_listed_with_its_package_and_parameter_count(
        example: MethodCard, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert f"{EXAMPLE_PACKAGE} 0.1.0" in rows[EXAMPLE]
    assert "iman 0.1.0" in rows["unet"]
    assert main(["models", EXAMPLE, "--params"]) == 0
    listed = capsys.readouterr().out.splitlines()[1].split()
    paper = example.paper_input
    built = build_model(EXAMPLE, dict(paper["in_channels"]), paper["img_size"], "paper")
    assert float(listed[5]) == round(count_parameters(built) / 1e6, 3)
    assert source_of(EXAMPLE).package == EXAMPLE_PACKAGE
    assert example.gates_skips and set(example.modalities) == {"us", "ceus"}


def test_a_card_breaking_the_contract_is_described() -> None:
    good = get_entry("unet")
    assert _card_problems(good, "unet") == []
    bad = MethodCard(name="Bad__Name", label="", build="no reference", variants={"demo": {}},
                     modalities=("mri",), load_weights="iman_nowhere.loader:load")
    problems = " | ".join(_card_problems(bad, "bad"))
    for needle in ("named 'Bad__Name'", "must match", "label", "no 'paper' variant",
                   "modalities", "build 'no reference': not a 'module:function'",
                   "load_weights 'iman_nowhere.loader:load': module not found"):
        assert needle in problems, needle
    assert "not an iman.models.registry.MethodCard" in _card_problems({"name": "x"}, "x")[0]


# ---- real distributions installed into a temporary folder ---------------------------------

BROKEN_CARDS = '''
from iman.models.registry import MethodCard

def _card(name, **changes):
    fields = dict(name=name, label=name, build="iman_plugin_ghost.net:build",
                  variants={"paper": {}, "demo": {}}, modalities=("us",))
    return MethodCard(**{**fields, **changes})

no_paper = _card("no_paper", variants={"demo": {}})
bad_modality = _card("bad_modality", modalities=("us", "mri"))
unet = _card("unet")
bad_build = _card("bad_build", build="iman_plugin_broken.not_there:build")
'''
GHOST_CARDS = '''
from iman.models.registry import MethodCard

ghost_net = MethodCard(name="ghost_net", label="Ghost", build="iman_plugin_ghost.net:build",
                       variants={"paper": {}, "demo": {}}, modalities=("us", "ceus"))
'''
GHOST_NET = '''
from torch import nn
import torch.nn.functional as F


class Ghost(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x, margin=None):
        h = F.relu(self.conv(x))
        if margin is not None:
            h = h * F.interpolate(margin, size=h.shape[-2:])
        return self.head(h)


def build(in_channels, img_size, weights=None):
    return Ghost(sum(in_channels.values()))
'''


def _package(root: Path, name: str, version: str, entry_points: dict[str, str],
             modules: dict[str, str]) -> Path:
    """A source tree of a distribution ``name`` with ``iman.methods`` entry points."""
    pkg = name.replace("-", "_")
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("")
    for module, text in modules.items():
        (root / pkg / f"{module}.py").write_text(text)
    eps = "\n".join(f'{k} = "{v}"' for k, v in entry_points.items())
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = '
        f'"setuptools.build_meta"\n[project]\nname = "{name}"\nversion = "{version}"\n'
        f'[project.entry-points."iman.methods"]\n{eps}\n[tool.setuptools]\n'
        f'packages = ["{pkg}"]\n')
    return root


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding two installed distributions: ``iman-plugin-broken`` (five broken
    entry points: an import error, no paper variant, an unknown modality, a name iman
    already has, a constructor in a missing module) and ``iman-plugin-ghost`` (one valid
    method), installed with ``pip install --target``; put it on PYTHONPATH to use them."""
    src = tmp_path_factory.mktemp("plugin-src")
    broken = _package(src / "broken", "iman-plugin-broken", "0.0.1", {
        "broken_import": "iman_plugin_broken.needs:card",
        "no_paper": "iman_plugin_broken.cards:no_paper",
        "bad_modality": "iman_plugin_broken.cards:bad_modality",
        "unet": "iman_plugin_broken.cards:unet",
        "bad_build": "iman_plugin_broken.cards:bad_build",
    }, {"needs": "import iman_dependency_nobody_installed\n", "cards": BROKEN_CARDS})
    ghost = _package(src / "ghost", "iman-plugin-ghost", "0.3.0",
                     {"ghost_net": "iman_plugin_ghost.cards:ghost_net"},
                     {"cards": GHOST_CARDS, "net": GHOST_NET})
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(broken), str(ghost)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_broken_plugins_are_reported_by_package_and_the_rest_still_work(
        plugins: Path) -> None:
    listing = subprocess.run([sys.executable, "-m", "iman.cli", "models"], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(plugins)})
    assert listing.returncode == 1, listing.stderr  # reported, not a crash
    head, _, broken = listing.stdout.partition("broken plug-ins (not usable):")
    listed = [line.split()[0] for line in head.strip().splitlines()[1:]]
    assert listed[:13] == list(METHOD_NAMES)
    assert "ghost_net" in listed and "no_paper" not in listed
    lines = broken.strip().splitlines()
    assert len(lines) == 5 and all("package iman-plugin-broken 0.0.1" in x for x in lines)
    assert all("pip uninstall iman-plugin-broken" in x for x in lines)
    for needle in ("'broken_import'", "ModuleNotFoundError", "iman_dependency_nobody_installed",
                   "'no_paper'", "no 'paper' variant", "'bad_modality'", "'mri'",
                   "'unet'", "also declared by in-tree: iman", "'bad_build'",
                   "module not found"):
        assert needle in broken, needle
    out = _python("""
        from iman.config import ConfigError, DEMO_CONFIG, resolve_config
        from iman.models import PluginError, build_model, get_entry, source_of
        import torch
        cfg = resolve_config([DEMO_CONFIG], {})  # the in-tree config is untouched
        assert source_of("unet").package == "iman"  # in-tree keeps its name
        y = build_model("unet", {"us": 1}, 32, "demo")(torch.zeros(1, 1, 32, 32))
        assert y.shape == (1, 1, 32, 32)
        try:
            get_entry("no_paper")
        except PluginError as err:
            print("GET:", err)
        try:
            resolve_config([DEMO_CONFIG], {"iman": {"backbone": "broken_import"}})
        except ConfigError as err:
            print("CONFIG:", err)
    """, plugins)
    assert out.returncode == 0, out.stderr
    got = dict(line.split(": ", 1) for line in out.stdout.strip().split("\n")
               if line.startswith(("GET:", "CONFIG:")))
    assert got["GET"].startswith("method 'no_paper' of package iman-plugin-broken 0.0.1 is "
                                 "broken") and "no 'paper' variant" in got["GET"]
    assert "config key 'iman.backbone': method 'broken_import' of package " \
           "iman-plugin-broken 0.0.1 is broken" in out.stdout
    assert "valid methods" not in out.stdout  # a broken name is not an unknown one


def test_a_checkpoint_records_its_plugin_and_names_it_when_missing(plugins: Path,
                                                                   tmp_path: Path) -> None:
    """Trained where the ghost plug-in is installed; loaded here, where it is not."""
    out = _python(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from _train_job import toy_data
        from iman.training.trainer import (CheckpointFiles, TrainConfig, Trainer,
                                           build_from_checkpoint)
        cfg = TrainConfig(model="ghost_net", variant="demo", in_channels={{"us": 1}},
                          img_size=32, max_epochs=1, batch_size=4, lr=1e-3, seed=0)
        files = CheckpointFiles.in_dir({str(tmp_path)!r})
        Trainer(cfg, toy_data(4, 0), toy_data(4, 1), files, device="cpu").fit(progress=False)
        build_from_checkpoint(files.best)  # loads where the plug-in is installed
    """, plugins)
    assert out.returncode == 0, out.stderr
    from iman.training.trainer import build_from_checkpoint

    best = tmp_path / "best.pt"
    record = torch.load(best, map_location="cpu", weights_only=True)["method"]
    assert record == {"name": "ghost_net", "package": "iman-plugin-ghost", "version": "0.3.0"}
    with pytest.raises(PluginError) as err:
        build_from_checkpoint(best)
    assert str(err.value) == (f"{best} was made with method 'ghost_net' of the plug-in package "
                              "iman-plugin-ghost 0.3.0, which is not installed: "
                              "pip install iman-plugin-ghost")


# ---- the example plug-in in the workflow -----------------------------------------------------


@pytest.mark.dag
def test_the_example_is_a_table1_row_the_iman_backbone_and_a_table5_backbone(
        example: MethodCard, tmp_path: Path) -> None:
    """The smallest DAG with all three roles (config/smoke.yaml, iman.loops 1): the example's
    two loop-0 baselines (its Table I row), IMAN's loop-1 nodes on it as backbone (the IMAN
    row and Table V's IMAN row), and Table V's other ablation rows on it; 6 training nodes.
    Then ``iman predict`` applies the IMAN experiment to the phantom cases."""
    from iman.config import load_config
    from iman.experiments import experiment_name, iman_spec
    from iman.predict import predict_cases

    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["iman"]["backbone"] = EXAMPLE
    cfg["tables"]["table1"] = {"methods": [EXAMPLE]}
    cfg["tables"]["table5"] = {"backbones": [EXAMPLE]}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = snakemake(tmp_path, "results/tables/table1.csv", "results/tables/table5.csv",
                    config=str(config))
    trained = _trained(_scheduled(run.stdout + run.stderr))
    resolved = load_config(config)
    assert sorted(trained) == sorted(_table_nodes(resolved, "table1")
                                     | _table_nodes(resolved, "table5"))
    assert len(trained) == 6 and {r.split(".")[0] for r, _, _ in trained} == {EXAMPLE}
    results = tmp_path / "results"
    t1 = pd.read_csv(results / "tables" / "table1.csv")
    assert list(t1["method"]) == [EXAMPLE_LABEL, "IMAN"]
    assert t1.filter(regex=r"^(us|ceus)_dsc$").notna().all().all()
    t5 = pd.read_csv(results / "tables" / "table5.csv")
    assert list(t5["backbone"]) == [EXAMPLE] * 4  # the csv keeps names, as for in-tree ones
    assert t5.filter(regex=r"^(us|ceus)_dsc$").notna().all().all()
    for prov in results.glob("runs/*/*/loop*/provenance.json"):
        assert json.loads(prov.read_text())["method"] == {
            "name": EXAMPLE, "package": EXAMPLE_PACKAGE, "version": "0.1.0"}
    name = experiment_name(iman_spec(resolved))
    cases = predict_cases(results, name, results / "phantom" / "cases.csv", tmp_path / "pred")
    assert cases and (tmp_path / "pred" / f"{cases[0]}_us_mask.png").is_file()
