"""Pretrained weights: catalogue, fetch from a local HTTP server, verify, start-up check.

No test reaches the internet: a server on localhost serves synthetic files with the real key
layouts, and a site catalogue (``IMAN_WEIGHTS_CATALOG``) points at it.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, snakemake
from weight_files import write_all

from iman.cli import main
from iman.data.dataset import IMAGENET_MEAN, IMAGENET_STD, Augment, augment_batch, normalise
from iman.experiments import node_for, table_specs
from iman.models import build_model
from iman.training import weights as w
from iman.training.node import node_protocol


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Path]]]:
    """(base URL, name → file) of a local HTTP server over synthetic weight files."""
    root = tmp_path_factory.mktemp("origin")
    files = write_all(root)
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


def _catalogue(path: Path, entries: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"files": entries}))
    return path


def _entry(url: str, file: Path, models: list[str], sha: str | None = None) -> dict:
    return {"filename": file.name, "url": f"{url}/{file.name}",
            "sha256": w.sha256sum(file) if sha is None else sha, "models": models,
            "origin": "test server", "fills": "test", "format": "test"}


@pytest.fixture
def site(served: tuple[str, dict[str, Path]], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Path]]:
    """An empty cache and a site catalogue mapping the served files to the demo variants."""
    url, files = served
    cat = _catalogue(tmp_path / "catalogue.yaml", {
        "resnet18": _entry(url, files["resnet18"], ["unet/demo", "fpn/demo"]),
        "swin": _entry(url, files["swin"], ["swinunet/demo"]),
        "resnext": _entry(url, files["resnext"], ["ggnet/demo"]),
        "r50vit": _entry(url, files["r50vit"], ["transunet/demo"]),
    })
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMAN_WEIGHTS_CATALOG", str(cat))
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(cache))
    return cache, files


def test_catalogue_lists_every_paper_network_with_a_public_file() -> None:
    cat = w.catalog()
    users = {m for f in cat.values() for m in f.models}
    for method in ("unet", "fpn", "unetpp", "deeplabv3", "transunet", "swinunet", "ggnet"):
        assert f"{method}/paper" in users
    for method in ("usseg", "dcnet", "aaunet", "nunet", "ceusegnet", "dpran"):
        assert w.expected_file(method, "paper") is None  # trained from scratch in its paper
    assert w.expected_file("transunet", "paper").filename == "R50+ViT-B_16.npz"
    for f in cat.values():
        assert f.sources and all(s.url.startswith("https://") and s.size_mb for s in f.sources)
    vit = w.expected_file("transunet", "paper")
    assert [s.layout for s in vit.sources] == ["npz", "timm", "safetensors"]
    assert vit.norm.mean == vit.norm.std == (0.5, 0.5, 0.5)  # [-1, 1] (timm's cfg)
    assert w.expected_file("unet", "paper").norm.label == "imagenet"


def test_fetch_then_verify_every_layout(site: tuple[Path, dict[str, Path]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    cache, files = site
    assert main(["weights", "fetch", "--quiet", "unet/demo", "swinunet/demo", "ggnet/demo",
                 "transunet/demo"]) == 0  # upstream formats: legacy torch, official Swin, npz
    assert capsys.readouterr().out.count("fetched ") == 4
    manifest = json.loads((cache / "weights.json").read_text())
    for name in ("resnet18", "swin", "resnext", "r50vit"):
        cached = cache / files[name].name
        assert cached.read_bytes() == files[name].read_bytes()
        assert manifest[cached.name]["sha256"] == w.sha256sum(files[name])
    assert not [p for p in cache.iterdir() if p.name.endswith(".partial")]
    # a second fetch finds valid copies and downloads nothing
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 0
    assert capsys.readouterr().out.startswith("cached ")
    for method, name in (("unet", "resnet18"), ("swinunet", "swin"), ("ggnet", "resnext"),
                         ("transunet", "r50vit")):
        assert main(["weights", "verify", str(cache / files[name].name), "--method", method,
                     "--variant", "demo"]) == 0
        assert f"OK: {cache / files[name].name} fits {method}/demo" in capsys.readouterr().out
    assert main(["weights", "list", "--check"]) == 0
    assert capsys.readouterr().out.count("[verified]") == 4


def test_a_checksum_mismatch_leaves_nothing_in_the_cache(
        served: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, files = served
    cat = _catalogue(tmp_path / "cat.yaml", {
        "resnet18": _entry(url, files["resnet18"], ["unet/demo"], sha="0" * 64)})
    monkeypatch.setenv("IMAN_WEIGHTS_CATALOG", str(cat))
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 2
    err = capsys.readouterr().err
    assert "resnet18-5c106cde.pth" in err and "failed its checksum" in err
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unreachable_origin_names_the_manual_route(
        served: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    _, files = served
    cat = _catalogue(tmp_path / "cat.yaml", {
        "resnet18": _entry(dead, files["resnet18"], ["unet/demo"]),
        "swin": _entry(dead, files["swin"], ["swinunet/demo"])})
    monkeypatch.setenv("IMAN_WEIGHTS_CATALOG", str(cat))
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights", "fetch", "--quiet", "unet/demo", "swinunet/demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("no connection") == 2  # every file tried, one message
    assert "no network here?" in err
    assert f"-> {tmp_path / 'cache' / 'swin_demo.pth'}" in err
    assert "iman weights verify FILE --method" in err


def test_a_file_of_another_model_is_named_with_its_missing_keys(
        site: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    _, files = site
    assert main(["weights", "verify", str(files["swin"]), "--method", "unet",
                 "--variant", "demo"]) == 1
    out = capsys.readouterr()
    assert f"{files['swin']}: resnet18 encoder" in out.out and "0 tensors loaded" in out.out
    assert "missing: conv1.weight" in out.out
    assert f"{files['swin']} is not a unet/demo weight file" in out.err
    # training from it fails the same way, before any step
    with pytest.raises(ValueError, match=r"swin_demo\.pth is not a resnet18 encoder"):
        build_model("unet", {"us": 3}, 32, "demo", weights=str(files["swin"]))


def test_pretrained_weights_land_in_the_network(site: tuple[Path, dict[str, Path]]) -> None:
    _, files = site
    sd = torch.load(files["resnet18"], weights_only=True)  # the legacy (non-zip) format
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    model = build_model("unet", {"us": 3}, 32, "demo", weights=str(files["resnet18"]))
    enc = model.net.encoder
    assert torch.equal(enc.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])
    assert torch.equal(enc.conv1.weight, sd["conv1.weight"])
    # 3 frames × RGB: the first conv is tiled and divided by 3
    ceus = build_model("unet", {"ceus": 9}, 32, "demo", weights=str(files["resnet18"]))
    torch.testing.assert_close(ceus.net.encoder.conv1.weight,
                               sd["conv1.weight"].repeat(1, 3, 1, 1) / 3)


def _demo_cfg(**model: object) -> dict:
    from iman.config import resolve_config

    return resolve_config([ROOT / "config" / "smoke.yaml"],
                          {"model": {"variants": {"default": "demo"}, **model}})


def test_the_protocol_follows_the_weights(site: tuple[Path, dict[str, Path]]) -> None:
    cache, files = site
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 0
    cfg = _demo_cfg(pretrained=True)
    _, specs = table_specs(cfg, "table1")[0]
    spec = specs[0]
    assert spec.method == "unet"
    us, ceus = (node_protocol(cfg, node_for(spec, m, 0)) for m in ("us", "ceus"))
    assert us["weights"] == files["resnet18"].name  # the name and the content, not the path
    assert us["weights_sha256"] == w.sha256sum(files["resnet18"])
    assert us["norm"] == "imagenet" and us["in_channels"] == {"us": 3}
    assert ceus["in_channels"] == {"ceus": 3 * spec.T}
    off = node_protocol(_demo_cfg(pretrained=False), node_for(spec, "us", 0))
    assert off["weights"] is None and off["norm"] == "grey" and off["in_channels"] == {"us": 1}
    assert off["weights_sha256"] is None
    # a method without an ImageNet file: the switch does not touch it (nothing reruns)
    cfg_dc = {**cfg, "tables": {**cfg["tables"], "table1": {"methods": ["dcnet"]}}}
    dc = node_for(table_specs(cfg_dc, "table1")[0][1][0], "us", 0)
    assert dc.run.startswith("dcnet.")
    assert node_protocol(cfg_dc, dc) == node_protocol({**cfg_dc, "model": {
        **cfg_dc["model"], "pretrained": False}}, dc)
    mine = cache.parent / "mine.pth"
    shutil.copy(files["resnet18"], mine)
    explicit = node_protocol(_demo_cfg(pretrained=False, weights={"unet": str(mine)}),
                             node_for(spec, "us", 0))
    assert explicit["weights"] == str(mine) and explicit["norm"] == "imagenet"
    assert explicit["weights_sha256"] == us["weights_sha256"]


def test_imagenet_normalisation_repeats_grey_to_rgb_and_pads_with_black() -> None:
    grey = np.array([0.0, 0.5, 1.0], np.float32).reshape(1, 1, 1, 3).repeat(2, 1)  # 2 frames
    x, black = normalise(grey, "imagenet")
    assert x.shape == (1, 6, 1, 3)
    for c in range(6):
        mean, std = IMAGENET_MEAN[c % 3], IMAGENET_STD[c % 3]
        torch.testing.assert_close(x[0, c, 0], (torch.tensor([0.0, 0.5, 1.0]) - mean) / std)
        assert black[c] == pytest.approx(-mean / std)
    image = torch.zeros(1, 6, 16, 16) + 5.0
    out, _, _ = augment_batch(image, torch.zeros(1, 1, 16, 16), None,
                              Augment(crop_scale=1.0, flip_p=0.0, rotate_deg=45.0),
                              torch.Generator().manual_seed(0), black)
    torch.testing.assert_close(out[0, :, 0, 0], black)  # a corner rotated in from outside


def test_the_tables_say_how_networks_were_initialised() -> None:
    from iman.evaluation.paper_tables import init_files
    from iman.reporting.tables import init_note

    def summary(*weights: str | None) -> dict:
        return {"provenance": {m: {"protocol": {"weights": wt}}
                               for m, wt in zip(("us", "ceus"), weights)}}

    assert init_note([("UNet", init_files([summary(None, None)]))]) == (
        "Initialisation: every network trained from random initialisation.")
    note = init_note([
        ("UNet", init_files([summary("/c/resnet50-19c8e357.pth", "/c/resnet50-19c8e357.pth")])),
        ("DC-Net", init_files([summary(None)]))])
    assert note == ("Initialisation: UNet from resnet50-19c8e357.pth; DC-Net from random "
                    "initialisation.")


@pytest.mark.slow
def test_paper_config_starts_only_with_its_weights(
        served: tuple[str, dict[str, Path]], tmp_path: Path) -> None:
    """The paper protocol on a small case sheet: an empty cache stops the run at start-up
    naming every missing file; filled by the local server, the dry run schedules the sweep."""
    import subprocess
    import sys

    url, files = served
    real = yaml.safe_load(w.CATALOG_PATH.read_text())["files"]
    site = {}
    for key, entry in real.items():  # the real filenames and users, served locally
        first = entry["sources"][0]
        copy = files["resnet18"].parent / first["filename"]
        if not copy.exists():  # a small file of the right format, never loaded by a dry run
            if first["layout"] == "npz":
                with open(copy, "wb") as fh:
                    np.savez(fh, x=np.zeros(3))
            else:
                torch.save({"x": torch.zeros(3)}, copy)
        site[key] = {**entry, "size_mb": 0.0001, "expect": None, "sources": [{
            **first, "url": f"{url}/{first['filename']}", "sha256": w.sha256sum(copy),
            "expect": None}]}  # placeholders: no layout signature (test_weight_content.py)
    cat = _catalogue(tmp_path / "site.yaml", site)
    env = {"IMAN_WEIGHTS_CATALOG": str(cat), "IMAN_WEIGHTS_DIR": str(tmp_path / "cache")}
    sheet = _small_sheet(tmp_path)
    dataset = f'dataset={{"source": "sheet", "root": "{sheet}"}}'
    empty = snakemake(tmp_path / "run", "-n", "--config", dataset, config="config/paper.yaml",
                      check=False, env=env)
    assert empty.returncode != 0
    said = empty.stdout + empty.stderr
    for name in ("resnet50-19c8e357.pth", "R50+ViT-B_16.npz", "swin_tiny_patch4_window7_224.pth",
                 "gluon_resnext101_32x4d-b253c8c4.pth"):
        assert f"{tmp_path / 'cache' / name} is missing" in said
    # Snakemake wraps the input function's error with a one-line location, never a Python
    # traceback
    assert "iman weights fetch" in said and "Traceback (most recent call last)" not in said
    assert not (tmp_path / "run" / "results").exists()  # stopped before any job
    fetched = subprocess.run([sys.executable, "-m", "iman.cli", "weights", "fetch", "--quiet"],
                             env={**os.environ, **env}, capture_output=True,
                             text=True)
    assert fetched.returncode == 0, fetched.stderr
    dry = snakemake(tmp_path / "run", "-n", "--config", dataset, config="config/paper.yaml",
                    env=env)
    jobs = [line.split()[0] for line in dry.stdout.splitlines()
            if line[:1].isalpha() and len(line.split()) == 2 and line.split()[1].isdigit()]
    counts = dict(zip(jobs, [int(line.split()[1]) for line in dry.stdout.splitlines()
                             if line.split()[:1] and line.split()[0] in jobs]))
    assert counts["train"] > 200 and counts["table"] == 5, dry.stdout[-3000:]


def _small_sheet(tmp_path: Path) -> Path:
    from iman.data.phantom import generate

    return generate(tmp_path / "cases", n_patients=6, seed=0)


@pytest.mark.slow
def test_a_pretrained_node_trains_on_imagenet_input(site: tuple[Path, dict[str, Path]],
                                                    tmp_path: Path) -> None:
    """One loop-0 node of the smoke DAG, pretrained on: the weights are an input, the
    input is RGB with ImageNet statistics, and the record says so."""
    from iman.paths import Paths

    cache, files = site
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 0
    cfg = _demo_cfg(pretrained=True)
    node = node_for(table_specs(cfg, "table1")[0][1][0], "us", 0)
    target = Paths("results").node(node).provenance
    snakemake(tmp_path, target, "--config", 'model={"pretrained": true}')
    record = json.loads((tmp_path / target).read_text())
    assert record["protocol"]["weights"] == files["resnet18"].name
    assert record["protocol"]["norm"] == "imagenet"
    assert record["protocol"]["in_channels"] == {"us": 3}
    best = torch.load(tmp_path / Paths("results").node(node).best, weights_only=True)
    assert best["config"]["norm"] == "imagenet"
    assert best["model"]["net.encoder.conv1.weight"].shape[1] == 3
    # touching the file retrains nothing (keyed on its content); new content retrains
    os.utime(cache / files["resnet18"].name)
    dry = snakemake(tmp_path, target, "-n", "--config", 'model={"pretrained": true}')
    assert "rule train:" not in dry.stdout
    state = torch.load(cache / files["resnet18"].name, weights_only=True)
    state["conv1.weight"] = state["conv1.weight"] * 1.01
    torch.save(state, cache / files["resnet18"].name)
    dry = snakemake(tmp_path, target, "-n", "--config", 'model={"pretrained": true}')
    assert "rule train:" in dry.stdout
