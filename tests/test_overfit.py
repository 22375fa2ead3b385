"""Every method can learn: each drives its training loss near zero on 4 phantom cases.

A method far below a plain U-net on the same data is a bug until shown otherwise. This is the
first check: the real trainer (the method's own loss: deep supervision, adversarial terms,
auxiliary heads) on 4 cached phantom cases at the demo working size, no augmentation, the
demo variant and the method's demo learning rate (``train.methods`` in config/config.yaml),
a fixed budget of steps. The Dice loss of the trained model's predictions on those same cases
must fall below ``DICE_TARGET``. Methods that do not get there are marked ``xfail(strict)``
with the measured value: known defects or limits, listed in docs/performance.md, and the
mark must go when they are fixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iman.config import DEMO_CONFIG, method_train, resolve_config
from iman.data.dataset import load_cases
from iman.data.frames import write_frames
from iman.data.ingest import ingest
from iman.data.phantom import generate
from iman.losses import dice_loss
from iman.models import all_entries, get_entry
from iman.paths import case_file
from iman.train import TrainConfig, Trainer, predict_probs

pytestmark = pytest.mark.slow

SIZE, T, STEPS = 64, 3, 300
DICE_TARGET = 0.1
DEMO = resolve_config([DEMO_CONFIG])
# measured Dice loss after STEPS steps at the demo learning rate (tests/test_overfit.py)
KNOWN = {
    ("deeplabv3", "us"): "0.226: output stride 8 (8x8 map at 64 px) cannot draw ~7 px lesions",
    ("deeplabv3", "ceus"): "0.119: output stride 8, as for US (close to the target)",
    ("swinunet", "us"): "0.648: patch-4 tokens, windows of 4, no warm-up; learns slowly at 64 px",
    ("swinunet", "ceus"): "0.115: as for US, close to the target",
    ("aaunet", "us"): "0.255: still falling after 300 steps (val DSC 0.66 in the default run)",
    ("ggnet", "us"): "0.353: its other loss terms still sum to ~2.6 after 300 steps",
}
CASES = [pytest.param(e.name, m, id=f"{e.name}-{m}",
                      marks=[pytest.mark.xfail(strict=True, reason=KNOWN[(e.name, m)])]
                      if (e.name, m) in KNOWN else [])
         for e in all_entries() for m in e.modalities]


@pytest.fixture(scope="module")
def phantom_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """4 phantom cases cached at the demo size, and CEUS frame picks (T = 3)."""
    root = tmp_path_factory.mktemp("overfit")
    sheet = generate(root / "phantom", n_patients=5, seed=4, second_case_fraction=0.0,
                     n_frames=12, height=140, width=116, video_format="frames")
    manifest = ingest("sheet", sheet, root / "data", SIZE)
    cases = sorted(manifest["case_id"].astype(str))[:4]
    frames = root / "frames.json"
    write_frames({c: case_file(root / "data" / "cache", c) for c in cases}, frames, "middle",
                 T, 2)
    return root / "data" / "cache", cases, frames


def overfit(method: str, modality: str, cache: Path, cases: list[str], frames: Path,
            out: Path, steps: int = STEPS, lr: float | None = None) -> float:
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
                                                   "rotate_deg": 0.0}, seed=0, threads=1)
    trainer = Trainer(cfg, data, data, out, device="cpu")
    trainer.fit(progress=False)
    probs = predict_probs(trainer.model, data, "cpu", 4)
    logits = torch.logit(torch.from_numpy(np.clip(probs, 1e-6, 1 - 1e-6)))[:, None]
    return float(dice_loss(logits, data.y))


@pytest.mark.parametrize(("method", "modality"), CASES)
def test_every_method_drives_the_training_loss_near_zero_on_4_cases(
        phantom_cache: tuple[Path, list[str], Path], tmp_path: Path, method: str,
        modality: str) -> None:
    cache, cases, frames = phantom_cache
    loss = overfit(method, modality, cache, cases, frames, tmp_path)
    assert loss < DICE_TARGET, f"{method} ({modality}) Dice loss {loss:.3f} after {STEPS} steps"
