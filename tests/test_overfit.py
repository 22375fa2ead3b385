"""Every method can learn: each drives its training loss down on 4 phantom cases.

A method far below a plain U-net on the same data is a bug until shown otherwise. This is the
first check: the real trainer (the method's own loss: deep supervision, adversarial terms,
auxiliary heads) on 4 cached phantom cases at the demo working size, no augmentation, the
demo variant and the method's demo learning rate (``train.methods`` in config/config.yaml),
a fixed budget of steps, then the Dice loss of the trained model's predictions on those same
cases.

The goal is ``DICE_TARGET``. Each method is held to its own bound: the worst it was measured
to reach over three seeds (``MEASURED``, torch 2.14.1, CPU, one thread) plus headroom
(``bound``), so a torch, thread or seed change does not flip the result, but a method that
stops learning fails. Methods measured at or above the target are the known shortfalls
(``SHORTFALLS``, with why; docs/testing.md): their bound is stated, not hidden behind a strict
xfail that a 0.02 drift flips, and
``test_the_known_shortfalls_are_exactly_the_methods_that_miss_the_target`` keeps the list and
the measurements in step. ``python tests/test_overfit.py`` prints the values to update
``MEASURED`` with (after a change of the phantom, the trainer or a method's recipe).

The 21 trainings (about 10 core-minutes) run side by side, one single-thread process per
core: every method, in-tree and plug-in (the example plug-in is part of the test
environment).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import torch

from iman.config import DEMO_CONFIG, method_train, resolve_config
from iman.data.dataset import load_cases
from iman.data.frames import write_frames
from iman.data.ingest import ingest
from iman.data.phantom import generate
from iman.models import all_entries, get_entry
from iman.paths import case_file
from iman.training.losses import dice_loss
from iman.training.trainer import CheckpointFiles, TrainConfig, Trainer, predict_probs

SIZE, T, STEPS = 64, 3, 300
DICE_TARGET = 0.1
DEMO = resolve_config([DEMO_CONFIG])
CASES = [(e.name, m) for e in all_entries() for m in e.modalities]

MEASURED: dict[tuple[str, str], float] = {
    # largest Dice loss after STEPS steps over seeds 0, 1, 2 (``python tests/test_overfit.py``
    # prints all three; torch 2.14.1, CPU, one thread, the calibrated phantom of 2026-12-02)
    ("unet", "us"): 0.017, ("unet", "ceus"): 0.003,
    ("fpn", "us"): 0.043, ("fpn", "ceus"): 0.017,
    ("unetpp", "us"): 0.029, ("unetpp", "ceus"): 0.022,
    ("deeplabv3", "us"): 0.238, ("deeplabv3", "ceus"): 0.121,
    ("transunet", "us"): 0.024, ("transunet", "ceus"): 0.004,
    ("swinunet", "us"): 0.340, ("swinunet", "ceus"): 0.169,
    ("aaunet", "us"): 0.645,
    ("nunet", "us"): 0.054,
    ("usseg", "us"): 0.024,
    ("ggnet", "us"): 0.320,
    ("dcnet", "us"): 0.307,
    ("dpran", "ceus"): 0.008,
    ("ceusegnet", "ceus"): 0.123,
    # the example plug-in (examples/iman-plugin-example), installed into the test environment
    ("example_unet", "us"): 0.037, ("example_unet", "ceus"): 0.266,
}
"""Largest Dice loss after STEPS steps over seeds 0, 1, 2: the test trains seed 0 only, and
a torch or thread change perturbs a trajectory much as another seed does."""

SHORTFALLS: dict[tuple[str, str], str] = {
    ("deeplabv3", "us"): "0.22-0.24: output stride 8 (an 8x8 map at 64 px) cannot draw "
                         "~7 px lesions",
    ("deeplabv3", "ceus"): "0.12: output stride 8, as for US",
    ("swinunet", "us"): "0.06-0.34 over seeds: patch-4 tokens, windows of 4, no warm-up; "
                        "learns slowly at 64 px and lr 5e-4 (its demo recipe runs 120 epochs)",
    ("swinunet", "ceus"): "0.08-0.17 over seeds: as for US",
    ("aaunet", "us"): "0.26-0.65 over seeds: still falling after 300 steps",
    ("ggnet", "us"): "0.31-0.32: its edge and side-output loss terms still dominate after "
                     "300 steps",
    ("dcnet", "us"): "0.03 and 0.05 on seeds 0 and 2, 0.31 on seed 1: at lr 1e-2 one seed "
                     "in three stalls",
    ("ceusegnet", "ceus"): "0.004 and 0.005 on seeds 1 and 2, 0.12 on seed 0 (the test's)",
    ("example_unet", "ceus"): "0.02 on seeds 0 and 2, 0.27 on seed 1: at the demo step "
                              "(2e-3; a plug-in has no recipe in config.yaml) one seed in "
                              "three stalls",
}
"""Methods that do not reach DICE_TARGET on every seed at this budget, and why."""


def bound(method: str, modality: str) -> float:
    """The loss a method must stay below: its measured value plus headroom (0.3 of it, at
    least 0.04), rounded up to 0.01. An untrained network scores 0.98; a method that stops
    learning crosses its bound, a perturbed trajectory does not."""
    measured = MEASURED[(method, modality)]
    return math.ceil((measured + max(0.04, 0.3 * measured)) * 100) / 100


def make_cache(root: Path) -> tuple[Path, list[str], Path]:
    """4 phantom cases cached at the demo size, and CEUS frame picks (T = 3)."""
    sheet = generate(root / "phantom", n_patients=5, seed=4, second_case_fraction=0.0,
                     n_frames=12, height=140, width=116, video_format="frames")
    manifest = ingest("sheet", sheet, root / "data", SIZE)
    cases = sorted(manifest["case_id"].astype(str))[:4]
    frames = root / "frames.json"
    write_frames({c: case_file(root / "data" / "cache", c) for c in cases}, frames, "middle",
                 T, 2)
    return root / "data" / "cache", cases, frames


def overfit(method: str, modality: str, cache: Path, cases: list[str], frames: Path,
            out: Path, steps: int = STEPS, lr: float | None = None, seed: int = 0,
            threads: int = 1) -> float:
    """Train on ``cases`` (one batch of 4, ``steps`` steps); Dice loss on them afterwards."""
    entry = get_entry(method)
    inputs = entry.consumed(modality)
    data = load_cases(cache, cases, inputs, modality, frames, None)
    lr = lr or method_train(DEMO, method)["lr"]
    cfg = TrainConfig(
        model=method, variant="demo", in_channels={m: 1 if m == "us" else T for m in inputs},
        img_size=SIZE, injection="gate_skips" if entry.gates_skips else "input_channel",
        max_epochs=steps, batch_size=4, lr=lr, min_lr=lr, weight_decay=0.0,
        patience=steps, converge_eps=0.0, augment={"crop_scale": 1.0, "flip_p": 0.0,
                                                   "rotate_deg": 0.0}, seed=seed,
        threads=threads)
    trainer = Trainer(cfg, data, data, CheckpointFiles.in_dir(out), device="cpu")
    trainer.fit(progress=False)
    probs = predict_probs(trainer.model, data, "cpu", 4)
    logits = torch.logit(torch.from_numpy(np.clip(probs, 1e-6, 1 - 1e-6)))[:, None]
    return float(dice_loss(logits, data.y))


def test_the_shortfall_list_names_exactly_the_recorded_measurements_above_the_target() -> None:
    """The hand-kept SHORTFALLS against the recorded MEASURED values (``python
    tests/test_overfit.py`` writes them): the live trainings are checked case by case against
    bounds that, outside SHORTFALLS, never exceed the target."""
    assert set(MEASURED) == set(CASES)  # every registered method, every modality it predicts
    missing = {c for c, v in MEASURED.items() if v >= DICE_TARGET}
    assert set(SHORTFALLS) == missing, "update SHORTFALLS (and docs/testing.md)"
    reaching = [c for c in CASES if c not in SHORTFALLS]
    assert all(bound(*c) <= DICE_TARGET for c in reaching), \
        [(c, bound(*c)) for c in reaching if bound(*c) > DICE_TARGET]


@pytest.fixture(scope="module")
def losses(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], float | str]:
    """Dice loss after overfitting, per (method, modality), or the error that stopped it.

    The trainings are independent single-thread processes (seeded, so a value does not
    depend on the worker or the load), run side by side, one per core this process may use.
    """
    root = tmp_path_factory.mktemp("overfit")
    data = make_cache(root)
    workers = max(1, min(len(CASES), len(os.sched_getaffinity(0))))
    results: dict[tuple[str, str], float | str] = {}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {c: pool.submit(overfit, *c, *data, root / "-".join(c)) for c in CASES}
        for case, future in futures.items():
            try:
                results[case] = future.result()
            except Exception as err:  # reported by the case's own test
                results[case] = f"{type(err).__name__}: {err}"
    return results


@pytest.mark.slow
@pytest.mark.parametrize(("method", "modality"), [pytest.param(*c, id="-".join(c))
                                                  for c in CASES])
def test_every_method_drives_the_training_loss_below_its_bound_on_4_cases(
        losses: dict[tuple[str, str], float | str], method: str, modality: str,
        record_property: pytest.RecordProperty) -> None:
    loss = losses[(method, modality)]
    assert isinstance(loss, float), f"{method} ({modality}) did not train: {loss}"
    record_property("dice_loss", round(loss, 4))
    limit = bound(method, modality)
    status = (f"known shortfall: {SHORTFALLS[(method, modality)]}"
              if (method, modality) in SHORTFALLS else f"target {DICE_TARGET}")
    assert loss < limit, (f"{method} ({modality}) Dice loss {loss:.3f} after {STEPS} steps, "
                          f"bound {limit:.2f} (measured {MEASURED[(method, modality)]:.3f}; "
                          f"{status})")


if __name__ == "__main__":  # measure: python tests/test_overfit.py [seed ...]
    seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_cache(Path(tmp))
        jobs = [(c, s) for c in CASES for s in seeds]
        workers = max(1, len(os.sched_getaffinity(0)))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(overfit, *c, *data, Path(tmp) / f"{'-'.join(c)}-{s}",
                                   seed=s) for c, s in jobs]
            values = [f.result() for f in futures]
        for i, (method, modality) in enumerate(CASES):
            got = values[i * len(seeds):(i + 1) * len(seeds)]
            print(f"{method:10s} {modality:5s} " + " ".join(f"{v:.3f}" for v in got)
                  + f"  max {max(got):.3f}")
