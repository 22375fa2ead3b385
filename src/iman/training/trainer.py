"""One trainer for every method, loop and modality; variants come from config.

The loop is a short sequence of named hooks (``_train_epoch``, ``_validate``,
``_checkpoint``, ``_should_stop``) around ``torch.optim.AdamW`` with cosine annealing from
``lr`` to ``min_lr``. A resumable checkpoint (model, optimizers, RNG states, history,
early-stopping state) is written after an epoch once ``RESUME_EVERY_S`` seconds have passed
since the last one, and when training stops: a job killed at any point and started again
continues from the last checkpointed epoch and ends with the same result as an uninterrupted
run (CPU, fixed seed), losing at most that much work. The best weights are kept in memory and
written (``best``) with each checkpoint, ``last`` once at the end: on small data,
writing three checkpoints after every sub-second epoch cost more than the epochs. SIGTERM is
caught: the trainer stops at the next batch boundary and exits with code 143 so the scheduler
(Snakemake ``retries``) resubmits it. A non-finite training or validation loss stops training
with a :class:`DivergenceError` (the node, the epoch, the learning rate and the recipe key to
change); that epoch's weights are never kept. Checkpoints hold tensors and plain types only and
are read with ``weights_only=True`` (:mod:`iman.training.checkpoint`). The test split is never
used here.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from iman.data.dataset import Augment, CaseArrays, augment_batch
from iman.errors import UserError
from iman.models.registry import build_model, method_record, require_installed
from iman.paths import NodeFiles
from iman.provenance import environment
from iman.training.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from iman.training.losses import build_loss, dice_loss
from iman.training.settings import TrainConfig

__all__ = ["RESUME_EVERY_S", "CheckpointFiles", "DivergenceError", "Preempted", "TrainConfig",
           "Trainer", "build_from_checkpoint", "predict_probs", "seed_everything"]


RESUME_EVERY_S = 15.0
"""Seconds of training between two resumable checkpoints (and at every stop); the
environment variable ``IMAN_RESUME_EVERY_S`` overrides it (0: after every epoch)."""


class Preempted(SystemExit):
    """Raised after SIGTERM once the resumable state is on disk (exit code 143)."""

    def __init__(self) -> None:
        super().__init__(143)


class DivergenceError(UserError, FloatingPointError):
    """Training produced a non-finite loss: the recipe's learning rate is too high (or the
    data feed NaNs); the message names the node, the epoch, the lr and the key to change."""


@dataclass(frozen=True)
class CheckpointFiles:
    """Where a :class:`Trainer` writes: best and last weights, resumable state, history."""

    best: Path
    last: Path
    resume: Path
    history: Path

    @classmethod
    def in_dir(cls, folder: str | Path) -> CheckpointFiles:
        """The node file names (:class:`iman.paths.NodeFiles`) inside ``folder``."""
        f = NodeFiles(str(folder))
        return cls(Path(f.best), Path(f.last), Path(f.resume), Path(f.history))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_from_checkpoint(path: Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint that records how it was made (a plug-in method
    that is not installed is an error naming its package). Loaded with ``weights_only=True``:
    a file holding anything but tensors and plain types is a :class:`CheckpointError`."""
    ckpt = load_checkpoint(path, device)
    cfg = ckpt["config"]
    require_installed(ckpt.get("method") or {"name": cfg["model"]}, str(path))
    model = build_model(cfg["model"], cfg["in_channels"], cfg["img_size"], cfg["variant"],
                        cfg["injection"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def _logits(out: Tensor | dict[str, Tensor]) -> Tensor:
    return out["logits"] if isinstance(out, dict) else out


@torch.no_grad()
def predict_probs(model: nn.Module, data: CaseArrays, device: str, batch_size: int = 16,
                  amp: bool = False) -> np.ndarray:
    """Sigmoid probabilities ``(N, S, S)`` for every case in ``data``."""
    model.eval()
    probs = []
    for i in range(0, len(data.case_ids), batch_size):
        x = data.x[i:i + batch_size].to(device)
        m = data.margin[i:i + batch_size].to(device) if data.margin is not None else None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda"):
            out = _logits(model(x, m))
        probs.append(torch.sigmoid(out.float())[:, 0].cpu().numpy())
    return np.concatenate(probs, 0)


class Trainer:
    """Train one branch on in-memory data; writes best/last/resume checkpoints + history."""

    def __init__(self, cfg: TrainConfig, train: CaseArrays, val: CaseArrays,
                 files: CheckpointFiles, init_weights: Path | None = None,
                 device: str | None = None) -> None:
        self.cfg, self.train_data, self.val_data, self.files = cfg, train, val, files
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch.set_num_threads(max(1, cfg.threads))
        seed_everything(cfg.seed)
        if self.device == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        # a warm start (loop >= 1) overwrites every tensor: the pretrained file is read once,
        # at loop 0. It is no rule input: the protocol (a param) holds its name and content
        # digest, checked at DAG time, so a new file still retrains every loop
        pretrained = cfg.weights if init_weights is None else None
        self.model = build_model(cfg.model, cfg.in_channels, cfg.img_size, cfg.variant,
                                 cfg.injection, pretrained).to(self.device)
        if init_weights is not None:
            self.model.load_state_dict(load_checkpoint(init_weights, self.device)["model"])
        adversary = getattr(self.model, "adversary", None)
        adv_ids = {id(p) for p in adversary.parameters()} if adversary is not None else set()
        gen_params = [p for p in self.model.parameters() if id(p) not in adv_ids]
        self.opt = torch.optim.AdamW(gen_params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     foreach=True)
        self.adv_opt = (torch.optim.AdamW(adversary.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
                        if adversary is not None else None)
        self.base_loss = build_loss(cfg)
        self.aug = Augment(**cfg.augment)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.history: list[dict[str, float]] = []
        self.best_val = math.inf
        self.bad_epochs = 0
        self._stop_requested = False
        self._best_state: dict[str, Any] | None = None  # best weights so far (CPU copy)
        self._best_dirty = False  # the best file on disk is older than _best_state
        self._last_save = time.monotonic()
        self._resume_every = float(os.environ.get("IMAN_RESUME_EVERY_S", RESUME_EVERY_S))

    # ---- hooks -------------------------------------------------------------------------
    def lr_at(self, epoch: int) -> float:
        """Cosine annealing from ``lr`` to ``min_lr`` over ``max_epochs`` (per epoch)."""
        c = self.cfg
        t = min(epoch, c.max_epochs) / max(1, c.max_epochs)
        return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))

    def _loss(self, out: Tensor | dict[str, Tensor], y: Tensor) -> Tensor:
        if hasattr(self.model, "loss"):
            return self.model.loss(out, y, self.base_loss)
        return self.base_loss(_logits(out), y)

    def _train_epoch(self, epoch: int) -> float:
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(epoch)
        data, n, total = self.train_data, len(self.train_data.case_ids), 0.0
        for idx in _batches(torch.randperm(n, generator=self.gen), self.cfg.batch_size):
            m = data.margin[idx] if data.margin is not None else None
            x, y, m = augment_batch(data.x[idx], data.y[idx], m, self.aug, self.gen,
                                    data.black)
            x, y = x.to(self.device), y.to(self.device)
            m = m.to(self.device) if m is not None else None
            with torch.autocast("cuda", dtype=torch.bfloat16,
                                enabled=self.cfg.amp and self.device == "cuda"):
                out = self.model(x, m)
                loss = self._loss(out, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.adv_opt is not None:
                self.adv_opt.zero_grad(set_to_none=True)
                self.model.adversary_loss(out, y).backward()
                self.adv_opt.step()
            total += float(loss.detach()) * len(idx)
            if self._stop_requested:
                raise Preempted()
        return total / n

    def _validate(self) -> tuple[float, float]:
        probs = predict_probs(self.model, self.val_data, self.device, self.cfg.batch_size,
                              self.cfg.amp)
        p = torch.from_numpy(probs)[:, None]
        y = self.val_data.y
        logits = torch.logit(p.clamp(1e-6, 1 - 1e-6))
        val_loss = float(dice_loss(logits, y))
        hard = (p >= 0.5).float()
        inter = (hard * y).flatten(1).sum(1)
        denom = hard.flatten(1).sum(1) + y.flatten(1).sum(1)
        dsc = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
        return val_loss, float(dsc.mean())

    def _should_stop(self, epoch: int) -> str | None:
        c = self.cfg
        if epoch + 1 >= c.max_epochs:
            return "max_epochs"
        if epoch + 1 < c.min_epochs:
            return None
        if self.bad_epochs >= c.patience:
            return "patience"
        losses = [h["val_loss"] for h in self.history]
        if c.converge_eps > 0 and len(losses) > c.converge_window:
            deltas = np.abs(np.diff(losses[-(c.converge_window + 1):]))
            if np.all(deltas < c.converge_eps):
                return "converged"
        return None

    def _state(self, model_state: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg), "model": model_state or self.model.state_dict(),
            "method": method_record(self.cfg.model), "seed": self.cfg.seed,
            "epoch": len(self.history), "meta": self.cfg.meta,
            "provenance": {"device": self.device, **environment()},
        }

    def _checkpoint(self, improved: bool, stop: str | None) -> None:
        if improved:
            self._best_state = {k: v.detach().to("cpu", copy=True)
                                for k, v in self.model.state_dict().items()}
            self._best_dirty = True
        _write_history(self.history, self.files.history)
        if stop is None and time.monotonic() - self._last_save < self._resume_every:
            return
        self._flush_best()  # best first: resume.pt never outruns it
        resume = {
            **self._state(), "best_model": self._best_state, "opt": self.opt.state_dict(),
            "adv_opt": self.adv_opt.state_dict() if self.adv_opt else None,
            "history": self.history, "best_val": self.best_val, "bad_epochs": self.bad_epochs,
            "stopped": stop, "rng": rng_state(self.gen),
        }
        atomic_save(resume, self.files.resume)
        self._last_save = time.monotonic()

    def _flush_best(self) -> None:
        """Write the best weights when those in memory are newer than (or missing on) disk."""
        if self._best_state is not None and (self._best_dirty
                                             or not self.files.best.exists()):
            best = {**self._state(self._best_state), "epoch": self._best_epoch()}
            atomic_save(best, self.files.best)
            self._best_dirty = False

    def _best_epoch(self) -> int:
        return min(self.history, key=lambda h: h["val_loss"])["epoch"] + 1

    def _resume(self) -> str | None:
        path = self.files.resume
        if not path.exists():
            return None
        try:  # to the CPU: loading into the model and the optimizers moves it
            state = load_checkpoint(path)
        except CheckpointError as err:  # e.g. numpy RNG state of an older iman
            raise CheckpointError(f"{err}. A resume state is only a shortcut: delete {path} "
                                  "to train this node afresh") from None
        if state["config"] != asdict(self.cfg):
            return None  # a different run wrote it: start afresh
        if state.get("best_model") is None and not self.files.best.exists():
            return None  # no best weights to continue from (an older format): start afresh
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.adv_opt is not None and state["adv_opt"]:
            self.adv_opt.load_state_dict(state["adv_opt"])
        self.history, self.best_val = state["history"], state["best_val"]
        self.bad_epochs = state["bad_epochs"]
        # the best weights travel with the resume state: a rerun (Snakemake deletes a failed
        # or incomplete job's outputs, the best weights too) restores them from here
        self._best_state = state.get("best_model")
        set_rng_state(self.gen, state["rng"])
        return state["stopped"] or "resumed"

    # ---- main loop ---------------------------------------------------------------------
    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Train until a stop rule fires; returns a summary (epochs, stop reason, best)."""
        for path in (self.files.best, self.files.last, self.files.resume, self.files.history):
            path.parent.mkdir(parents=True, exist_ok=True)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            resumed = self._resume()
            stop = resumed if resumed not in (None, "resumed") else None
            with tqdm(total=self.cfg.max_epochs, initial=len(self.history), disable=not progress,
                      file=sys.stderr, desc=self.files.best.parent.name, mininterval=5) as bar:
                while stop is None:
                    stop = self._epoch()
                    bar.update(1)
                    bar.set_postfix(val_dice=f"{self.history[-1]['val_dice']:.3f}")
            _write_history(self.history, self.files.history)
            self._flush_best()
            atomic_save(self._state(), self.files.last)
        finally:
            signal.signal(signal.SIGTERM, previous)
        best = min(self.history, key=lambda h: h["val_loss"])
        return {"epochs": len(self.history), "stop": stop, "best_epoch": best["epoch"],
                "best_val_loss": best["val_loss"], "best_val_dice": best["val_dice"],
                "device": self.device}

    def _epoch(self) -> str | None:
        """Train and validate one epoch, record and checkpoint it; the stop reason, if any."""
        epoch, t0 = len(self.history), time.perf_counter()
        train_loss = self._train_epoch(epoch)
        val_loss, val_dice = self._validate()
        self._check_finite(epoch, train_loss, val_loss)
        improved = val_loss < self.best_val
        self.best_val = min(self.best_val, val_loss)
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        self.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                             "val_dice": val_dice, "lr": self.lr_at(epoch),
                             "seconds": time.perf_counter() - t0})
        stop = self._should_stop(epoch)
        self._checkpoint(improved, stop)
        return stop

    def _check_finite(self, epoch: int, train_loss: float, val_loss: float) -> None:
        """Stop with a :class:`DivergenceError` on a non-finite loss (before this epoch can
        be checkpointed, so its weights never become best or resume state)."""
        if math.isfinite(train_loss) and math.isfinite(val_loss):
            return
        meta, model = self.cfg.meta, self.cfg.model
        node = (f"{meta['run']}/{meta['modality']}/loop{meta['loop']}"
                if {"run", "modality", "loop"} <= meta.keys() else str(self.files.best.parent))
        raise DivergenceError(
            f"training diverged: node {node}, epoch {epoch + 1}: training loss {train_loss:g}, "
            f"validation loss {val_loss:g} at learning rate {self.lr_at(epoch):g}. Lower the "
            f"method's learning rate, config key train.methods.{model}.lr (e.g. --config "
            f"'train={{\"methods\": {{\"{model}\": {{\"lr\": {self.cfg.lr / 10:g}}}}}}}'); "
            "no checkpoint of a non-finite epoch was kept")

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self._stop_requested = True


def _write_history(history: list[dict[str, float]], path: Path) -> None:
    """One row per epoch (the csv module: pandas costs a training process 0.2 s to import)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]) if history else [])
        writer.writeheader()
        writer.writerows(history)


def _batches(order: Tensor, size: int) -> list[Tensor]:
    """Consecutive batches of ``order``; a trailing batch of one joins the previous one
    (BatchNorm cannot train on a single sample with 1×1 maps)."""
    batches = list(torch.split(order, size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches
