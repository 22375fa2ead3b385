"""Trainer behaviour: loss, paired augmentation, schedule, stop rules, kill-and-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from iman.data.dataset import Augment, augment_batch
from iman.training.losses import SegLoss, dice_loss
from iman.training.trainer import CheckpointFiles, Trainer, build_from_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _train_job import config, toy_data

JOB = Path(__file__).parent / "_train_job.py"


def test_dice_loss_eq1_by_hand() -> None:
    # p = sigmoid(logits) = [0.5, 0.5, 0.5, 0.5]; y = [1, 1, 0, 0]
    logits, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    expected = 1 - (2 * 1.0 + 1e-5) / (2.0 + 2.0 + 1e-5)
    assert float(dice_loss(logits, target)) == pytest.approx(expected)
    assert float(SegLoss(bce_weight=1.0)(logits, target)) == pytest.approx(
        expected + torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_augmentation_uses_one_draw_for_image_mask_and_margin() -> None:
    y = (torch.rand(6, 1, 32, 32) > 0.5).float()
    x = y.clone() * 4 - 2  # image = mask (in normalised units)
    x2, y2, m2 = augment_batch(x, y, y.clone(), Augment(0.7, 0.5, 30),
                               torch.Generator().manual_seed(0))
    assert torch.equal((x2 > 0).float(), y2)  # same geometry for image and mask
    assert torch.equal((m2 >= 0.5).float(), y2)  # and for the margin
    assert not torch.equal(y2, y)  # something happened


def test_cosine_schedule_endpoints(tmp_path: Path) -> None:
    tr = Trainer(config(10), toy_data(4, 0), toy_data(2, 1), CheckpointFiles.in_dir(tmp_path))
    assert tr.lr_at(0) == pytest.approx(1e-3) and tr.lr_at(10) == pytest.approx(1e-4)
    assert 1e-4 < tr.lr_at(5) < 1e-3


def test_patience_stops_and_checkpoints_rebuild(tmp_path: Path) -> None:
    cfg = config(50)
    cfg.patience, cfg.lr, cfg.min_lr = 1, 1e-9, 1e-9  # nothing improves after epoch 0
    files = CheckpointFiles.in_dir(tmp_path)
    summary = Trainer(cfg, toy_data(4, 0), toy_data(2, 1), files).fit(progress=False)
    assert summary["stop"] in ("patience", "converged") and summary["epochs"] < 15
    model, ckpt = build_from_checkpoint(tmp_path / "best.pt")
    assert ckpt["seed"] == 0 and ckpt["config"]["model"] == "unet"
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist.columns) == ["epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds"]


def _run(out: Path, epochs: int) -> subprocess.Popen:
    # a resumable checkpoint after every epoch, so a kill after epoch 2 resumes from there
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IMAN_RESUME_EVERY_S": "0"}
    return subprocess.Popen([sys.executable, str(JOB), str(out), str(epochs)], env=env)


def _wait_epochs(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        hist = out / "history.csv"
        if hist.exists() and len(pd.read_csv(hist)) >= n:
            return
        assert proc.poll() is None, "job ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError("training did not progress")


def _final(out: Path) -> tuple[pd.DataFrame, dict]:
    hist = pd.read_csv(out / "history.csv").drop(columns=["seconds"])
    return hist, torch.load(out / "last.pt", weights_only=True)["model"]


EPOCHS = 5


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run to compare the resumed ones with."""
    ref = tmp_path_factory.mktemp("ref")
    assert _run(ref, EPOCHS).wait(timeout=300) == 0
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_job_resumes_to_the_same_result(tmp_path: Path, reference: Path,
                                               sig: int) -> None:
    epochs, ref = EPOCHS, reference
    out = tmp_path / "killed"
    proc = _run(out, epochs)
    _wait_epochs(out, 2, proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    done = len(pd.read_csv(out / "history.csv"))
    assert done < epochs
    resumed_from = torch.load(out / "resume.pt", weights_only=True)["epoch"]
    assert 1 <= resumed_from <= done  # it continues from a checkpoint, not from scratch
    assert _run(out, epochs).wait(timeout=300) == 0
    (h_ref, w_ref), (h_out, w_out) = _final(ref), _final(out)
    pd.testing.assert_frame_equal(h_ref, h_out)
    assert all(torch.equal(w_ref[k], w_out[k]) for k in w_ref)


def test_no_training_batch_of_one() -> None:
    from iman.training.trainer import _batches

    assert [len(b) for b in _batches(torch.arange(17), 8)] == [8, 9]
    assert [len(b) for b in _batches(torch.arange(16), 8)] == [8, 8]
    assert torch.equal(torch.cat(_batches(torch.arange(17), 8)), torch.arange(17))


def test_checkpoints_are_throttled_but_written_at_the_stop(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from _train_job import config, toy_data

    from iman.training.trainer import Trainer

    monkeypatch.setenv("IMAN_RESUME_EVERY_S", "3600")  # no checkpoint until the stop
    saves: list[str] = []
    import iman.training.trainer as T

    real = T.atomic_save
    monkeypatch.setattr(T, "atomic_save", lambda obj, path: (saves.append(path.name),
                                                              real(obj, path)))
    files = CheckpointFiles.in_dir(tmp_path)
    Trainer(config(4), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    assert sorted(saves) == ["best.pt", "last.pt", "resume.pt"]  # once each, at the stop
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    hist = pd.read_csv(tmp_path / "history.csv")
    assert len(hist) == 4 and best["epoch"] == int(hist["val_loss"].idxmin()) + 1


def test_a_finished_run_whose_outputs_were_deleted_restores_them_from_resume(
        tmp_path: Path) -> None:
    # Snakemake deletes a job's outputs before re-running it (code change, --forcerun,
    # --rerun-incomplete); resume.pt of the finished run must bring best.pt back, unchanged
    from _train_job import config, toy_data

    from iman.training.trainer import Trainer

    files = CheckpointFiles.in_dir(tmp_path)
    Trainer(config(3), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    before = torch.load(tmp_path / "best.pt", weights_only=True)
    for name in ("best.pt", "last.pt", "history.csv"):
        (tmp_path / name).unlink()
    summary = Trainer(config(3), toy_data(8, 0), toy_data(4, 1), files).fit(progress=False)
    after = torch.load(tmp_path / "best.pt", weights_only=True)
    assert summary["epochs"] == 3 and (tmp_path / "last.pt").exists()
    assert len(pd.read_csv(tmp_path / "history.csv")) == 3
    assert after["epoch"] == before["epoch"]
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
