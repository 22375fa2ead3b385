"""One kind of user error (message, no traceback), divergence as an error, and checkpoints
that cannot run code (issue 26 §4-6)."""

from __future__ import annotations

import dataclasses
import random
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _train_job import config, toy_data
from conftest import ROOT, copy_run, snakemake

from iman.cli import COMMANDS, main
from iman.errors import UserError
from iman.training.checkpoint import CheckpointError, load_checkpoint, rng_state, set_rng_state
from iman.training.trainer import (
    CheckpointFiles,
    DivergenceError,
    TrainConfig,
    Trainer,
    build_from_checkpoint,
)

sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from _log import run_logged

FPN = "fpn.demo__gate__T3s2mid__none__-__-__L0__seed0"
"""The smoke config's Table I FPN experiment: the smallest DAG with a trained experiment."""
FPN_US = "results/runs/fpn.demo__gate__-__none__-__-__seed0/us/loop0"


class Payload:
    """Unpickling this opens (creates) ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return open, (str(self.marker), "w")


def _malicious(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file whose unpickling would create ``marker``."""
    torch.save({"config": Payload(marker), "model": {}}, path)
    return path


# ---- §4: the job wrapper and the CLI ---------------------------------------------------


def _failures(tmp: Path) -> dict[str, Callable[[], Any]]:
    """One real library call per kind of user error a job (or ``iman``) can raise."""
    from iman.config import DEMO_CONFIG, resolve_config
    from iman.data.ingest import ingest
    from iman.data.io import read_image
    from iman.models import build_model
    from iman.models.registry import require_installed
    from iman.predict import predict_cases
    from iman.training.weights import locate

    sheet = tmp / "cases.csv"
    sheet.write_text("case_id,patient_id,us_image,us_mask,ceus,ceus_mask\nA,P,a.png,m.png,c,n.png\n")
    (tmp / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    torch.save({"foo": torch.zeros(3)}, tmp / "w.pt")
    diverging = TrainConfig(model="unet", variant="demo", in_channels={"us": 1}, img_size=32,
                            max_epochs=2, batch_size=4, lr=1e8, threads=1,
                            meta={"run": "r", "modality": "us", "loop": 0})
    return {
        "ConfigError": lambda: resolve_config([DEMO_CONFIG], {"iman": {"loops": "many"}}),
        "DatasetError": lambda: ingest("sheet", sheet, tmp / "ingest", 16),
        "ReadError": lambda: read_image(tmp / "bad.png"),
        "WeightsError": lambda: locate(str(tmp / "gone.pth"), "0" * 64),
        "WrongWeightsError": lambda: build_model("unet", {"us": 1}, 32, "demo", "gate_skips",
                                                 str(tmp / "w.pt")),
        "UnknownModelError": lambda: build_model("nope", {"us": 1}, 32, "demo"),
        "PluginError": lambda: require_installed(
            {"name": "nope", "package": "iman-nope", "version": "1"}, "best.pt"),
        "PredictError": lambda: predict_cases(tmp, "nonsense", sheet, tmp / "pred"),
        "DivergenceError": lambda: Trainer(diverging, toy_data(8, 0), toy_data(4, 1),
                                           CheckpointFiles.in_dir(tmp / "node")).fit(False),
        "CheckpointError": lambda: build_from_checkpoint(
            _malicious(tmp / "best.pt", tmp / "pwned")),
    }


@pytest.fixture()
def restore_streams() -> Iterator[None]:
    """run_logged points stdout/stderr at the job's log for good: put them back."""
    out, err = sys.stdout, sys.stderr
    yield
    sys.stdout, sys.stderr = out, err


def _logged(func: Callable[[], Any], log: Path) -> str:
    with pytest.raises(SystemExit) as exit_:
        run_logged(str(log), func)
    assert exit_.value.code == 1
    return log.read_text()


@pytest.mark.usefixtures("restore_streams")
def test_every_user_error_fails_a_job_with_its_message_and_no_traceback(tmp_path: Path) -> None:
    for kind, func in _failures(tmp_path).items():
        with pytest.raises(UserError) as raised:
            func()
        assert type(raised.value).__name__ == kind
        text = _logged(func, tmp_path / f"{kind}.log")
        assert text.startswith(f"{kind}: "), text
        assert str(raised.value).splitlines()[0] in text and "Traceback" not in text, text
    assert not (tmp_path / "pwned").exists()


@pytest.mark.usefixtures("restore_streams")
def test_a_bug_in_a_job_keeps_its_traceback(tmp_path: Path) -> None:
    text = _logged(lambda: {}["missing"], tmp_path / "bug.log")
    assert "Traceback" in text and "KeyError: 'missing'" in text


@pytest.mark.parametrize("argv, says", [
    (["config", "--config", 'iman={"loops": "many"}'], "iman config: invalid configuration"),
    (["models", "nope"], "unknown method 'nope'"),
    (["predict", "--experiment", "nonsense", "--sheet", "x.csv", "--out", "o"],
     "iman predict: 'nonsense' is not an experiment name"),
    (["ingest", "--layout", "sheet", "--root", "missing.csv", "--out", "o"], "missing.csv"),
])
def test_cli_prints_user_errors_without_a_traceback(argv: list[str], says: str,
                                                    capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err


def test_cli_keeps_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "config", lambda args: 1 // 0)
    with pytest.raises(ZeroDivisionError):
        main(["config"])


# ---- §5: divergence --------------------------------------------------------------------


def test_divergence_after_a_finite_best_epoch_fails_and_keeps_that_best(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 1 is finite (and best), epoch 2's validation loss is NaN: the run fails naming
    node, epoch, lr and recipe key, instead of stopping on patience; best.pt stays epoch 1."""
    monkeypatch.setenv("IMAN_RESUME_EVERY_S", "0")  # a checkpoint after every epoch
    real = Trainer._validate
    calls: list[int] = []

    def validate(self: Trainer) -> tuple[float, float]:
        calls.append(1)
        return (float("nan"), 0.0) if len(calls) == 2 else real(self)

    monkeypatch.setattr(Trainer, "_validate", validate)
    cfg = dataclasses.replace(config(5), patience=1,
                              meta={"run": "unet.demo__x", "modality": "us", "loop": 1})
    files = CheckpointFiles.in_dir(tmp_path)
    trainer = Trainer(cfg, toy_data(8, 0), toy_data(4, 1), files)
    with pytest.raises(DivergenceError) as err:
        trainer.fit(progress=False)
    for part in ("node unet.demo__x/us/loop1", "epoch 2", "validation loss nan",
                 f"learning rate {trainer.lr_at(1):g}", "train.methods.unet.lr"):
        assert part in str(err.value), str(err.value)
    assert load_checkpoint(files.best)["epoch"] == 1
    assert load_checkpoint(files.resume)["epoch"] == 1  # the NaN epoch is never resumable
    assert not files.last.exists()


# ---- §6: checkpoints -------------------------------------------------------------------


def test_checkpoints_load_weights_only_warm_start_and_rng_roundtrip(tmp_path: Path) -> None:
    files = CheckpointFiles.in_dir(tmp_path)
    Trainer(config(1), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    for path in (files.best, files.last, files.resume):
        torch.load(path, weights_only=True)  # tensors and plain types only
    warm = Trainer(config(1), toy_data(8, 0), toy_data(4, 1),
                   CheckpointFiles.in_dir(tmp_path / "loop1"), init_weights=files.best)
    best = load_checkpoint(files.best)["model"]
    assert all(torch.equal(v, best[k]) for k, v in warm.model.state_dict().items())
    assert set(load_checkpoint(files.resume)["rng"]) == {"torch", "gen", "numpy", "python"}
    gen = torch.Generator().manual_seed(3)
    np.random.randn()  # a cached Gaussian is part of numpy's state
    torch.save({"config": {}, "model": {}, "rng": rng_state(gen)}, tmp_path / "rng.pt")

    def draws() -> tuple[float, ...]:
        return (random.random(), np.random.randn(), torch.rand(1).item(),
                torch.rand(1, generator=gen).item())

    first = draws()
    set_rng_state(gen, load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draws() == first


def test_unsafe_checkpoints_are_refused_everywhere_naming_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _malicious(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match=f"(?s){evil}: refused.*io.open"):
        build_from_checkpoint(evil)  # predict, training's own prediction
    with pytest.raises(CheckpointError, match="refused"):  # warm start (loop >= 1)
        Trainer(config(1), toy_data(8, 0), toy_data(4, 1), CheckpointFiles.in_dir(tmp_path / "a"),
                init_weights=evil)
    files = CheckpointFiles.in_dir(tmp_path / "b")
    files.resume.parent.mkdir()
    _malicious(files.resume, marker)
    with pytest.raises(CheckpointError, match=f"{files.resume}: refused"):  # resume
        Trainer(config(1), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    torch.save({"config": {}, "model": {}, "rng": {"numpy": np.random.get_state()}},
               files.resume)  # the RNG encoding of older versions: numpy arrays
    with pytest.raises(CheckpointError, match=f"(?s)numpy.*delete {files.resume}"):
        Trainer(config(1), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not an iman checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    (tmp_path / "cut.pt").write_bytes(files.resume.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    assert not marker.exists()
    with open(evil, "rb"):  # the payload is live: an unrestricted load would run it
        torch.load(evil, weights_only=False)
    assert marker.exists()


# ---- DAG: the smallest runs that hold the jobs -----------------------------------------


@pytest.fixture(scope="module")
def fpn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke config's Table I FPN experiment, trained and summarised (10 jobs)."""
    work = tmp_path_factory.mktemp("fpn")
    snakemake(work, f"results/experiments/{FPN}/summary.json")
    return work


@pytest.mark.dag
def test_predict_refuses_a_malicious_checkpoint_and_runs_none_of_it(
        fpn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = copy_run(fpn_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    best = _malicious(work / FPN_US / "best.pt", marker)
    code = main(["predict", "--results", str(work / "results"), "--experiment", FPN,
                 "--sheet", str(work / "results" / "phantom" / "cases.csv"),
                 "--out", str(tmp_path / "pred")])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert f"iman predict: {best}: refused" in err and "Traceback" not in err, err
    assert not (tmp_path / "pred" / "predictions.json").exists()


@pytest.mark.dag
def test_a_diverging_job_fails_naming_its_node_and_no_result_is_written(
        fpn_run: Path, tmp_path: Path) -> None:
    """The smoke config with an absurd FPN learning rate: its jobs fail with the message in
    their log and on the console, no traceback, and no summary or table comes from them."""
    work = copy_run(fpn_run, tmp_path / "run")
    for trained in ("runs", "experiments"):  # keep the data, train afresh
        shutil.rmtree(work / "results" / trained)
    run = snakemake(work, f"results/experiments/{FPN}/summary.json", "--config",
                    'train={"methods": {"fpn": {"lr": 1.0e8}}}', check=False)
    console = run.stdout + run.stderr
    assert run.returncode != 0
    log = work / "results" / "logs" / "train" / FPN_US.split("/")[2] / "us" / "loop0.log"
    for text in (log.read_text(), console):
        assert ("DivergenceError: training diverged: node fpn.demo__gate__-__none__-__-__seed0/"
                "us/loop0, epoch 1") in text and "learning rate 1e+08" in text, text
        assert "train.methods.fpn.lr" in text and "Traceback" not in text, text
    assert not (work / FPN_US / "best.pt").exists()
    assert not (work / "results" / "experiments" / FPN / "summary.json").exists()
    assert not (work / "results" / "tables").exists()
