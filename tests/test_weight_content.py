"""Issue 26: weight files checked for what they contain at start-up, and `fetch` holding a
download to its Content-Length.

The files are paper-size, in the upstream layouts, zero-filled from the classes installed
here (torchvision, timm; :mod:`weight_files`), never this project's own state dicts. The
checks run against the packaged catalogue (its ``expect:`` signatures). No test reaches the
internet: the short download comes from a server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import snakemake
from weight_files import paper_state, r50_vit_npz_arrays, write_paper_files

from iman.cli import main
from iman.training import weights as w
from iman.training.weight_content import read_shapes, sniff

SWIN = "swin_tiny_patch4_window7_224.pth"
R50 = "resnet50.tv_in1k.safetensors"
VIT_ST = "vit_base_r50_s16_224.orig_in21k.safetensors"
GLUON = "gluon_resnext101_32x4d-b253c8c4.pth"


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paper-size upstream-layout files, written once for the module."""
    return write_paper_files(tmp_path_factory.mktemp("paper"))


def _place(dest: Path, src: Path, fraction: float = 1.0) -> Path:
    """``src`` (its first ``fraction`` of bytes) at ``dest``; whole: a hard link."""
    dest.parent.mkdir(exist_ok=True)
    if fraction == 1.0:
        os.link(src, dest)
        return dest
    with open(src, "rb") as fh:
        dest.write_bytes(fh.read(int(fraction * src.stat().st_size)))
    return dest


def _npz(path: Path) -> Path:
    """An npz file (the official R50+ViT format, small) at ``path``, whatever its suffix."""
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **{"conv_root/kernel": np.zeros((7, 7, 3, 64), np.float32)})
    return path


def _named(f: w.WeightFile) -> dict[str, w.Source]:
    return {s.filename: s for s in f.sources}


def test_signatures_tell_the_paper_networks_apart(paper: dict[str, Path]) -> None:
    """Every catalogue source accepts its own network in its layout and rejects the others
    (ResNeXt-50 shares every name with ResNet-50, and is rejected by its shapes)."""
    shapes = {k: read_shapes(p, sniff(p)) for k, p in paper.items() if k != "r50vit_npz"}
    shapes["r50vit_npz"] = {k: a.shape for k, a in r50_vit_npz_arrays().items()}
    shapes["swin_timm"] = {k: tuple(v.shape) for k, v in paper_state("swin").items()}
    shapes["resnet50_zip"] = {k: tuple(v.shape) for k, v in paper_state("resnet50").items()}
    shapes["resnet18"] = {k: tuple(v.shape) for k, v in paper_state("resnet18").items()}
    own = {"resnet50_imagenet": {"resnet50", "resnet50_zip"},
           "swin_tiny_in1k": {"swin", "swin_timm"},
           "resnext101_32x4d_in1k": {"resnext101"}, "resnet18_imagenet": {"resnet18"}}
    for f in w.catalog().values():
        for s in f.sources:
            mine = own.get(f.id, {"r50vit_npz"} if s.layout == "npz" else {"r50vit_st"})
            for name, held in shapes.items():
                problems = s.expect.problems(held)
                assert (problems == []) == (name in mine), (f.id, s.filename, name, problems)


FAULTS = {  # fault: (method, catalogue file name, how the file is made, what the check says)
    "truncated_safetensors": (
        "transunet", VIT_ST, lambda p, path: _place(path, p["r50vit_st"], 0.9),
        "is truncated: its header describes 391.6 MB of tensor data, the file holds 352.4 MB "
        "(89.9 %)"),
    "resnet50_as_swin": (
        "swinunet", SWIN, lambda p, path: _place(path, p["resnet50"]),
        "holds another network's tensors: holds 267 tensors, not 169–192; lacks "
        "patch_embed.proj.weight"),
    "resnext_as_resnet50": (
        "unet", R50, lambda p, path: _place(path, p["resnext50_st"]),
        "holds another network's tensors: layer1.0.conv2.weight is (128, 4, 3, 3), not "
        "(64, 64, 3, 3)"),
    "html_page": (
        "transunet", "R50+ViT-B_16.npz",
        lambda p, path: path.write_bytes(b"<!DOCTYPE html><html>Google Drive - Virus scan "
                                         b"warning</html>"),
        "is a web page"),
    "truncated_legacy": (
        "unet", "resnet50-19c8e357.pth", lambda p, path: _place(path, p["resnet50"], 0.9),
        "is truncated: its index describes 102.5 MB, the file holds 92.2 MB (89.9 %)"),
    "truncated_zip": (
        "ggnet", GLUON, lambda p, path: _place(path, p["resnext101"], 0.9),
        "is a damaged or truncated zip archive"),
    "npz_as_safetensors": (
        "transunet", VIT_ST, lambda p, path: _npz(path),
        "is in npz format, not safetensors (the catalogue's safetensors layout): another file "
        "under this name"),
}
"""The six file faults of issue 26 (the seventh, a short download, is fetch's), and a
cut-off legacy torch file (the 2017 ResNet-50's format)."""


@pytest.mark.parametrize("fault", list(FAULTS))
def test_start_up_check_names_each_faulty_file(
        paper: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fault: str) -> None:
    """Each fault under a catalogue name: the start-up check names the file, what is wrong,
    and the fix; the file is left where it is."""
    method, name, make, said = FAULTS[fault]
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path))
    make(paper, tmp_path / name)
    with pytest.raises(w.WeightsError) as err:
        w.check_available({"pretrained": True}, [(method, "paper")])
    text = str(err.value)
    assert f"  - {tmp_path / name} {said}" in text, text
    assert "no job was started" in text and "iman weights verify" in text
    assert (tmp_path / name).exists()
    if fault == "resnet50_as_swin":
        assert "(it looks like the resnet50_imagenet file)" in text


def test_paper_files_in_their_layouts_pass_the_content_check(
        paper: dict[str, Path], tmp_path: Path) -> None:
    """The positive control: each catalogue file's content check accepts the upstream file
    under its own name (the digest is another check; these are not the released bytes)."""
    cat = w.catalog()
    cases = [("resnet50_imagenet", "resnet50-19c8e357.pth", "resnet50"),
             ("swin_tiny_in1k", SWIN, "swin"),
             ("resnext101_32x4d_in1k", GLUON, "resnext101"),
             ("r50_vit_b16_in21k", "R50+ViT-B_16.npz", "r50vit_npz"),
             ("r50_vit_b16_in21k", VIT_ST, "r50vit_st")]
    for entry, name, key in cases:
        placed = _place(tmp_path / name, paper[key])
        assert w.content_problem(placed, _named(cat[entry])[name]) is None, name


def test_the_torch_index_reads_what_torch_load_reads(paper: dict[str, Path]) -> None:
    """The torch-free pickle index against the original: the same names and shapes as
    ``torch.load(weights_only=True)``, for the legacy and the zip format."""
    import torch

    for key in ("resnet50", "swin", "resnext101"):
        loaded = torch.load(paper[key], map_location="cpu", weights_only=True)
        loaded = loaded.get("model", loaded)
        want = {k: tuple(v.shape) for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        assert read_shapes(paper[key], sniff(paper[key])) == want, key


@pytest.mark.parametrize("legacy", [True, False])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(
        tmp_path: Path, legacy: bool) -> None:
    import torch

    flag = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (flag.touch, ())

    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "x": Payload()}, path,
               _use_new_zipfile_serialization=not legacy)
    source = _named(w.catalog()["resnet50_imagenet"])[path.name]
    problem = w.content_problem(path, source)
    assert problem and problem.startswith("holds objects other than tensors and plain types")
    assert not flag.exists()


class _Origin(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` with its full Content-Length; sends only ``fraction`` of it, then
    closes the connection."""

    body = b""
    fraction = 1.0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: int(self.fraction * len(self.body))])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def short_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[type[_Origin], Path]]:
    """A server on 127.0.0.1 (stopped after the test) and a site catalogue for unet/demo."""
    from weight_files import save_legacy, torchvision_resnet

    handler = type("Origin", (_Origin,), {})
    src = save_legacy(torchvision_resnet("resnet18"), tmp_path / "r18.pth")
    handler.body = src.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    cat = tmp_path / "site.yaml"
    url = f"http://127.0.0.1:{server.server_address[1]}/resnet18.pth"
    cat.write_text(yaml.safe_dump({"files": {"r18": {
        "sources": [{"url": url, "filename": "resnet18.pth", "layout": "torch"}],
        "size_mb": len(handler.body) / 1e6, "models": ["unet/demo"]}}}))
    monkeypatch.setenv("IMAN_WEIGHTS_CATALOG", str(cat))
    monkeypatch.setenv("IMAN_WEIGHTS_DIR", str(tmp_path / "cache"))
    try:
        yield handler, tmp_path / "cache"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_fetch_rejects_a_short_download(short_origin: tuple[type[_Origin], Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A server closing at 90 % of its Content-Length: nothing is kept or recorded; served
    whole, the file is fetched and recorded with its URL."""
    handler, cache = short_origin
    handler.fraction = 0.9
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 2
    err = capsys.readouterr().err
    n = len(handler.body)
    assert f"short download: received {int(0.9 * n)} of {n} bytes (Content-Length)" in err
    assert "discarded" in err and "no network here" not in err
    assert list(cache.iterdir()) == []  # no file, no .partial, no weights.json
    handler.fraction = 1.0
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 0
    assert capsys.readouterr().out.startswith("fetched ")
    record = json.loads((cache / "weights.json").read_text())["resnet18.pth"]
    assert record["origin"] == "fetched" and record["url"].endswith("/resnet18.pth")
    assert record["sha256"] == w.sha256sum(cache / "resnet18.pth") and record["bytes"] == n


def test_a_hand_placed_file_is_recorded_as_such(short_origin: tuple[type[_Origin], Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file found in the cache: its digest is recorded, with no invented URL, and
    `weights list --check` says it was placed by hand."""
    handler, cache = short_origin
    cache.mkdir()
    (cache / "resnet18.pth").write_bytes(handler.body)
    assert main(["weights", "fetch", "--quiet", "unet/demo"]) == 0
    assert capsys.readouterr().out.startswith("placed by hand (recorded) ")
    record = json.loads((cache / "weights.json").read_text())["resnet18.pth"]
    assert record["origin"] == "placed by hand" and "url" not in record
    assert record["sha256"] == w.sha256sum(cache / "resnet18.pth")
    assert main(["weights", "list", "--check"]) == 0
    listed = capsys.readouterr().out
    assert "r18  [verified, placed by hand]" in listed
    assert f"recorded: {record['sha256']} (placed by hand: no source URL)" in listed


@pytest.mark.dag
def test_paper_dry_run_stops_before_any_job_naming_each_faulty_file(
        paper: dict[str, Path], tmp_path: Path) -> None:
    """config/paper.yaml with the issue's three faults (and a cut-off torch zip) in the
    cache: the dry run schedules nothing and names every file, what is wrong and the fix."""
    from iman.data.phantom import generate

    cache = tmp_path / "cache"
    placed = {}
    for fault in ("truncated_safetensors", "resnet50_as_swin", "resnext_as_resnet50",
                  "truncated_zip"):
        _, name, make, said = FAULTS[fault]
        make(paper, cache / name)
        placed[cache / name] = said
    sheet = generate(tmp_path / "cases", n_patients=6, seed=0)
    dry = snakemake(tmp_path / "run", "-n", "tables", "--config",
                    f'dataset={{"source": "sheet", "root": "{sheet}"}}',
                    config="config/paper.yaml", check=False,
                    env={"IMAN_WEIGHTS_DIR": str(cache)})
    said = dry.stdout + dry.stderr
    assert dry.returncode != 0
    for path, what in placed.items():
        assert f"{path} {what}" in said, said[-3000:]
    assert "iman weights verify" in said and "Traceback (most recent call last)" not in said
    assert "Job stats" not in said and not (tmp_path / "run" / "results").exists()
