"""Issue 19: ordered sources, faults caught at start-up naming the file, per-file
normalisation, exact first-conv adaptation under weight standardisation, upstream formats.

No test reaches the internet: a loopback HTTP server serves the files (127.0.0.1 only).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import snakemake
from weight_files import (
    certify_npz,
    r50_vit_npz_from_timm,
    save_legacy,
    timm_r50_vit,
    torchvision_resnet,
    write_all,
)

from iman.cli import main
from iman.data.dataset import normalise
from iman.models import build_model
from iman.models.blocks import WrongWeightsError, standardise
from iman.models.transunet import TransUNet, load_r50_vit
from iman.training import weights as w

TINY_TU = {"resnet_units": (1, 1, 1), "width": 32, "hidden": 192, "layers": 2, "heads": 4,
           "mlp_dim": 768, "head_channels": 32, "decoder_channels": (32, 16, 16, 16)}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Path]]]:
    """(base URL, name → file) of a loopback server over upstream-format files."""
    root = tmp_path_factory.mktemp("origin")
    files = write_all(root)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


def _site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict) -> Path:
    cat = tmp_path / "site.yaml"
    cat.write_text(yaml.safe_dump({"files": files}))
    monkeypatch.setenv("IMAN_WEIGHTS_CATALOG", str(cat))
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _vit_entry(url: str, files: dict[str, Path], sha: bool = True) -> dict:
    """The TransUNet entry: the official npz first (not served), timm's .pth second."""
    return {"sources": [
        {"url": f"{url}/gone/R50+ViT-B_16.npz", "filename": "R50+ViT-B_16.npz",
         "layout": "npz", "sha256": None},
        {"url": f"{url}/{files['r50vit_timm'].name}", "filename": files["r50vit_timm"].name,
         "layout": "timm", "sha256": w.sha256sum(files["r50vit_timm"]) if sha else None}],
        "size_mb": 0.01, "norm": {"mean": [0.5] * 3, "std": [0.5] * 3, "range": [0, 1]},
        "models": ["transunet/demo"], "origin": "test", "fills": "test"}


def test_fetch_falls_back_to_the_second_source_and_says_what_happened(
        origin: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, files = origin
    cache = _site(tmp_path, monkeypatch, {"vit": _vit_entry(url, files)})
    assert main(["weights", "fetch", "--quiet", "transunet/demo"]) == 0
    out = capsys.readouterr().out
    assert "fetched (source 2)" in out and files["r50vit_timm"].name in out
    record = json.loads((cache / "weights.json").read_text())[files["r50vit_timm"].name]
    assert record["sha256"] == w.sha256sum(files["r50vit_timm"])
    assert record["url"].endswith(files["r50vit_timm"].name)
    assert not (cache / "R50+ViT-B_16.npz").exists()
    # the run resolves to the file that is there, keyed on its content, [-1, 1] input
    r = w.resolve({"pretrained": True}, "transunet", "demo")
    assert r.path == str(cache / files["r50vit_timm"].name) and r.norm == "inception"
    assert w.weights_key(r) == (files["r50vit_timm"].name, record["sha256"])
    assert main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert "[cached]" in listed and "source 2: " + files["r50vit_timm"].name in listed
    assert "inception" in listed and "mean (0.5, 0.5, 0.5)" in listed
    assert "unknown: none published" in listed and f"recorded: {record['sha256']}" in listed
    # the timm-layout file fills the TransUNet
    assert main(["weights", "verify", str(cache / files["r50vit_timm"].name), "--method",
                 "transunet", "--variant", "demo", "--size", "64", "--frames", "5"]) == 0
    said = capsys.readouterr().out
    assert "timm layout" in said and "[ceus: 15 channels, 64 px]" in said


def test_every_source_failing_is_reported_per_source(
        origin: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, files = origin
    entry = _vit_entry(url, files)
    entry["sources"][1]["sha256"] = "0" * 64
    _site(tmp_path, monkeypatch, {"vit": entry})
    assert main(["weights", "fetch", "--quiet", "transunet/demo"]) == 2
    err = capsys.readouterr().err
    assert "source 1 " in err and "HTTP 404" in err
    assert "source 2 " in err and "failed its checksum" in err
    assert "manual route" in err and "no network here" not in err  # the network was fine
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_hand_placed_broken_file_is_reported_and_never_deleted(
        origin: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, files = origin
    cache = _site(tmp_path, monkeypatch, {"vit": _vit_entry(url, files)})
    cache.mkdir()
    page = b"<!DOCTYPE html><html>Google Drive - Virus scan warning</html>" * 400
    (cache / "R50+ViT-B_16.npz").write_bytes(page)
    assert main(["weights", "fetch", "--quiet", "transunet/demo"]) == 2
    err = capsys.readouterr().err
    assert "R50+ViT-B_16.npz is a web page" in err and "left where it is" in err
    assert (cache / "R50+ViT-B_16.npz").read_bytes() == page


@pytest.mark.parametrize("fault", ["truncated", "html", "wrong_digest", "wrong_arch"])
def test_start_up_check_names_each_broken_file(
        origin: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fault: str) -> None:
    url, files = origin
    entry = _vit_entry(url, files)
    entry["sources"][0]["sha256"] = w.sha256sum(files["r50vit"])
    entry["size_mb"] = files["r50vit"].stat().st_size / 1e6
    cache = _site(tmp_path, monkeypatch, {"vit": entry})
    cache.mkdir()
    target = cache / "R50+ViT-B_16.npz"
    data = files["r50vit"].read_bytes()
    target.write_bytes({"truncated": data[: len(data) // 2],
                        "html": b"<html><body>Sign in</body></html>" + b" " * len(data),
                        "wrong_digest": data[:-1] + bytes([data[-1] ^ 1]),
                        "wrong_arch": files["swin"].read_bytes()}[fault])
    with pytest.raises(w.WeightsError) as err:
        w.check_available({"pretrained": True}, [("transunet", "demo")])
    text = str(err.value)
    assert f"{target} " in text and "no job was started" in text
    assert {"truncated": "damaged or truncated zip", "html": "is a web page",
            "wrong_digest": "not the catalogue's digest",
            "wrong_arch": "not npz (the catalogue"}[fault] in text
    assert target.exists()  # never deleted


def test_loader_errors_name_the_file_and_point_to_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = save_legacy(torchvision_resnet("resnet18"), tmp_path / "resnet18.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(legacy.read_bytes()[:5000])  # UnpicklingError / EOF in the legacy format
    zipped = tmp_path / "cut_zip.npz"
    np.savez(zipped, a=np.zeros(1000))
    zipped.write_bytes(zipped.read_bytes()[:300])  # BadZipFile
    for path, method in ((cut, "unet"), (zipped, "transunet")):
        with pytest.raises(WrongWeightsError, match=rf"{path.name}.*iman weights verify"):
            build_model(method, {"us": 3}, 64, "demo", weights=str(path))
        assert main(["weights", "verify", str(path), "--method", method,
                     "--variant", "demo"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err


def test_site_catalogue_gaps_and_malformed_entries_are_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _site(tmp_path, monkeypatch, {"other": {
        "sources": [{"url": "https://x/y.pth", "filename": "y.pth"}],
        "models": ["unet/demo"]}})
    with pytest.raises(w.WeightsError, match=r"no entry for transunet/paper.*R50\+ViT-B_16"):
        w.resolve({"pretrained": True}, "transunet", "paper")
    assert w.resolve({"pretrained": False}, "transunet", "paper").source == "random"
    _site(tmp_path, monkeypatch, {"bad": {"url": "https://x/y.pth", "models": ["unet/demo"]},
                                  "worse": {"sources": [], "models": []}})
    with pytest.raises(w.WeightsError) as err:
        w.catalog()
    assert "bad: source 1 has no 'filename'" in str(err.value)
    assert "worse: 'sources' must be a non-empty list" in str(err.value)


def test_moving_the_cache_keeps_the_key(origin: tuple[str, dict[str, Path]], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = origin
    cache = _site(tmp_path, monkeypatch, {"vit": _vit_entry(url, files)})
    assert main(["weights", "fetch", "--quiet", "transunet/demo"]) == 0
    key = w.weights_key(w.resolve({"pretrained": True}, "transunet", "demo"))
    moved = tmp_path / "moved"
    cache.rename(moved)
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(moved))
    assert w.weights_key(w.resolve({"pretrained": True}, "transunet", "demo")) == key
    assert w.locate(*key) == moved / key[0]
    (moved / key[0]).write_bytes((moved / key[0]).read_bytes() + b"\0")
    with pytest.raises(w.WeightsError, match="planned with"):
        w.locate(*key)


def test_normalisation_follows_each_file() -> None:
    grey = np.full((1, 1, 2, 2), 1.0, np.float32)
    x, black = normalise(grey, "inception")
    assert x.shape == (1, 3, 2, 2) and torch.allclose(x, torch.ones_like(x))
    assert torch.allclose(black, -torch.ones(3))
    y, _ = normalise(grey, {"mean": [0.5] * 3, "std": [0.5] * 3})
    assert torch.equal(x, y)


def test_root_conv_adaptation_is_exact_under_weight_standardisation() -> None:
    """T identical frames (and grey) give the pretrained response after standardisation;
    a margin channel has no effect."""
    vit = timm_r50_vit()
    state = vit.state_dict()
    pretrained = standardise(state["patch_embed.backbone.stem.conv.weight"], 1e-5)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    ref = F.conv2d(x, pretrained, stride=2, padding=3)
    for channels, inp in ((3, x), (15, x.repeat(1, 5, 1, 1)), (9, x.repeat(1, 3, 1, 1)),
                          (1, x[:, :1]), (4, torch.cat([x, 5 * torch.randn(2, 1, 64, 64)], 1))):
        model = TransUNet(channels, 64, **TINY_TU)
        assert load_r50_vit(model, state).ok
        want = ref if channels != 1 else F.conv2d(x[:, :1].repeat(1, 3, 1, 1), pretrained,
                                                  stride=2, padding=3)
        with torch.no_grad():
            got = model.resnet.root_conv(inp)
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_timm_layout_and_certified_npz_load_the_same_tensors(
        origin: tuple[str, dict[str, Path]]) -> None:
    _, files = origin
    vit = timm_r50_vit()
    fresh = timm_r50_vit()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    assert certify_npz(vit, files["r50vit"], fresh) == 0.0  # timm's own loader agrees
    a, b = TransUNet(15, 64, **TINY_TU), TransUNet(15, 64, **TINY_TU)
    assert load_r50_vit(a, str(files["r50vit"])).ok
    report = load_r50_vit(b, str(files["r50vit_timm"]))
    assert report.ok and "timm layout" in report.what
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        if not k.startswith(("decoder", "conv_more", "head")):
            torch.testing.assert_close(va, vb, msg=k)


@pytest.mark.slow
def test_paper_size_r50_vit_from_an_npz_certified_by_timm(tmp_path: Path) -> None:
    """timm's vit_base_r50_s16_224 → npz (its loader inverted) → back into timm (equal
    outputs) → the paper TransUNet at 320 px with 5 CEUS frames."""
    vit = timm_r50_vit(paper=True)
    path = tmp_path / "R50+ViT-B_16.npz"
    np.savez(path, **r50_vit_npz_from_timm(vit))
    fresh = timm_r50_vit(paper=True)
    assert certify_npz(vit, path, fresh) < 1e-4
    del fresh
    assert main(["weights", "verify", str(path), "--method", "transunet", "--size", "320",
                 "--frames", "5"]) == 0
    model = build_model("transunet", {"ceus": 15}, 320, "paper", weights=str(path))
    blk, ref = model.blocks[3], vit.blocks[3]
    torch.testing.assert_close(torch.cat([blk.attn.query.weight, blk.attn.key.weight,
                                          blk.attn.value.weight]), ref.attn.qkv.weight)
    assert model.pos_embed.shape[1] == 20 * 20


REAL = os.environ.get("IMAN_REAL_WEIGHTS_DIR")


@pytest.mark.skipif(not REAL, reason="set IMAN_REAL_WEIGHTS_DIR to a directory holding the "
                    "real catalogue files")
def test_the_real_files_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt-in: every catalogue file present in $IMAN_REAL_WEIGHTS_DIR passes the start-up
    check and fills its paper network at the paper protocol's size and T."""
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(REAL))
    found = 0
    for f in w.catalog().values():
        source, path = w.cached_source(f)
        if not path.is_file():
            continue
        found += 1
        assert w.file_problem(path, source, w.read_manifest(path.parent)) is None
        method = next(m for m in f.models if m.endswith("/paper")).split("/")[0]
        reports = w.verify(path, method, "paper", size=320, frames=5)
        assert all(r.ok for r in reports), "\n".join(r.text() for r in reports)
    assert found, f"no catalogue file in {REAL}"


@pytest.mark.slow
def test_paper_dry_run_stops_at_start_up_on_a_truncated_file_but_data_runs(
        tmp_path: Path) -> None:
    """config/paper.yaml: `data` needs no weights; the dry run of tables names the truncated
    file (and every other fault) before any job."""
    from iman.data.phantom import generate

    sheet = generate(tmp_path / "cases", n_patients=6, seed=0)
    cache = tmp_path / "cache"
    cache.mkdir()
    vit = w.expected_file("transunet", "paper")
    (cache / vit.filename).write_bytes(b"PK\x03\x04" + b"\0" * 1000)  # a cut-off download
    env = {"IMAN_WEIGHTS_DIR": str(cache)}
    dataset = f'dataset={{"source": "sheet", "root": "{sheet}"}}'
    data = snakemake(tmp_path / "run", "-n", "data", "--config", dataset,
                     config="config/paper.yaml", check=False, env=env)
    assert data.returncode == 0, data.stderr[-2000:]
    dry = snakemake(tmp_path / "run", "-n", "tables", "--config", dataset,
                    config="config/paper.yaml", check=False, env=env)
    said = dry.stdout + dry.stderr
    assert dry.returncode != 0
    assert f"{cache / vit.filename} is a damaged or truncated zip" in said
    assert f"{cache / 'resnet50-19c8e357.pth'} is missing" in said
    assert "Job stats" not in said and not (tmp_path / "run" / "results").exists()

