"""Seed-paper methods (US-SEG, GG-Net, DC-Net): sizes, losses, gating, adversary."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from iman.models import build_model, count_parameters, get_entry
from iman.models.dcnet import DCP, harmonic_loss
from iman.models.ggnet import boundary_map

SEED_MODELS = ("usseg", "ggnet", "dcnet")


def soft_dice(logits: Tensor, target: Tensor) -> Tensor:
    """A stand-in for the trainer's Dice loss (1 − mean per-sample soft Dice)."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    return (1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)).mean()


def toy_batch(size: int = 64, batch: int = 2) -> tuple[Tensor, Tensor]:
    """Images with a bright disc and the disc's mask."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = []
    for i in range(batch):
        c = size // 2 + 4 * i
        masks.append(((yy - c) ** 2 + (xx - size // 2) ** 2 < (size // 5) ** 2).float())
    target = torch.stack(masks)[:, None]
    gen = torch.Generator().manual_seed(0)
    image = target + 0.3 * torch.randn(target.shape, generator=gen)
    return image, target


def demo(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, {"us": 1}, 64, variant="demo")


# ---------------------------------------------------------------------------- parameter counts

def test_usseg_paper_params() -> None:
    entry = get_entry("usseg")
    model = build_model("usseg", **entry.paper_input)
    # public UNet 31,042,369 + side heads 1×1 on 512/256/128 channels (513 + 257 + 129)
    assert count_parameters(model) == 31_042_369 + 899
    assert abs(count_parameters(model) / 1e6 - entry.paper_params_m) / entry.paper_params_m < 0.01
    # one discriminator: 7×7 2→64 (map + image), 5×5 64→128, 4×4 128→256, 4×4 256→512,
    # 4×4 512→1 (+ biases)
    one = (49 * 2 * 64 + 64) + (25 * 64 * 128 + 128) + (16 * 128 * 256 + 256) \
        + (16 * 256 * 512 + 512) + (16 * 512 + 1)
    assert sum(p.numel() for p in model.adversary.parameters()) == 4 * one == 11_366_660
    from iman.models.usseg import build_usseg

    paper_input = build_usseg({"us": 1}, 256, conditional=False)
    assert sum(p.numel() for p in paper_input.adversary.parameters()) == 11_354_116


def test_ggnet_paper_params() -> None:
    entry = get_entry("ggnet")
    model = build_model("ggnet", **entry.paper_input)
    backbone = sum(p.numel() for m in (model.stem, model.layer1, model.layer2, model.layer3)
                   for p in m.parameters())
    assert backbone == 27_583_808  # ResNeXt-101 32x4d layers 0-3 (peers §9: 27.58 M)
    n = count_parameters(model)
    assert abs(n / 1e6 - entry.paper_params_m) / entry.paper_params_m < 0.01


def test_dcnet_paper_params() -> None:
    entry = get_entry("dcnet")
    model = build_model("dcnet", **entry.paper_input)
    assert count_parameters(model) == 54_413_607
    # CCF Conv1d kernels: 2·C³ + 2·C per level, C = 256, 128, 64, 32
    conv1d = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Conv1d)
                 for p in m.parameters())
    assert conv1d == sum(2 * c**3 + 2 * c for c in (256, 128, 64, 32))


def test_entries() -> None:
    for name in SEED_MODELS:
        entry = get_entry(name)
        assert entry.family == "seed" and entry.modalities == ("us",) and entry.gates_skips
        assert {"paper", "demo"} <= set(entry.variants)


# ---------------------------------------------------------------------------- sizes, learning
# (the forward/backward and gating contract: tests/model_tester.py, run for every method)

@pytest.mark.parametrize("name", SEED_MODELS)
@pytest.mark.parametrize("size", [96, pytest.param(320, marks=pytest.mark.slow)])
def test_other_sizes(name: str, size: int) -> None:
    model = demo(name).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 1, size, size), torch.rand(1, 1, size, size))
    assert y.shape == (1, 1, size, size)


@pytest.mark.parametrize("name", SEED_MODELS)
def test_loss_decreases(name: str) -> None:
    model = demo(name).train()
    x, target = toy_batch()
    adversary = getattr(model, "adversary", None)
    skip = {id(p) for p in adversary.parameters()} if adversary is not None else set()
    opt = torch.optim.Adam([p for p in model.parameters() if id(p) not in skip], lr=3e-3)

    def measured() -> float:
        torch.manual_seed(1)  # same dropout masks at both measurements
        with torch.no_grad():
            return float(model.loss(model(x), target, soft_dice))

    before = measured()
    for _ in range(6):
        opt.zero_grad()
        model.loss(model(x), target, soft_dice).backward()
        opt.step()
    assert math.isfinite(before) and measured() < before


# ---------------------------------------------------------------------------------- US-SEG

def test_usseg_adversary_step_touches_only_discriminators() -> None:
    model = demo("usseg").train()
    x, target = toy_batch()
    out = model(x)
    # the generator loss builds no graph into the discriminators
    model.loss(out, target, soft_dice).backward()
    assert all(p.grad is None for p in model.adversary.parameters())
    gen_before = {n: p.detach().clone() for n, p in model.named_parameters()
                  if not n.startswith("adversary")}
    adv_before = [p.detach().clone() for p in model.adversary.parameters()]
    model.zero_grad()
    opt = torch.optim.AdamW(model.adversary.parameters(), lr=1e-3)
    loss = model.adversary_loss(out, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert all(p.grad is None for n, p in model.named_parameters()
               if not n.startswith("adversary"))
    for n, p in model.named_parameters():
        if not n.startswith("adversary"):
            assert torch.equal(p, gen_before[n])
    changed = [not torch.equal(p, b) for p, b in zip(model.adversary.parameters(), adv_before)]
    assert all(changed)


def test_usseg_loss_matches_eq1() -> None:
    assert build_model("usseg", {"us": 1}, 64, "paper").beta == 0.05  # the paper's beta
    model = demo("usseg").train()
    x, target = toy_batch()
    out = model(x)
    stages = [out["logits"], out["side2"], out["side3"], out["side4"]]
    expected = sum(a * soft_dice(s, target) for a, s in zip((1, 0.1, 0.1, 0.1), stages))
    for disc, s in zip(model.adversary, stages):
        d = torch.sigmoid(disc(torch.cat([torch.sigmoid(s), x], dim=1)))  # conditioned on x
        expected = expected + model.beta * torch.log(1 - d).mean()  # demo beta 0.005
    assert torch.allclose(model.loss(out, target, soft_dice), expected, atol=1e-5)


# ---------------------------------------------------------------------------------- GG-Net

def test_boundary_map_of_square() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1  # 4×4 square
    expected = torch.zeros(8, 8)
    expected[1:7, 1:7] = 1
    expected[2:6, 2:6] = 0  # the 20-pixel outer ring (8-neighbourhood)
    edge = boundary_map(mask)[0, 0]
    assert torch.equal(edge, expected) and int(edge.sum()) == 20


def test_boundary_map_of_logits() -> None:
    p = torch.tensor([[[[0.0, 1.0, -2.0]]]])
    # maxpool3×3 (pad ignored): [1, 1, 1] → |p − max| = [1, 0, 3]
    assert torch.equal(boundary_map(p), torch.tensor([[[[1.0, 0.0, 3.0]]]]))


def test_ggnet_loss_sums_fifteen_terms() -> None:
    model = demo("ggnet")
    _, target = toy_batch()
    logits = torch.randn_like(target)
    gt_edge = boundary_map(target)
    out = {"logits": logits, "edge0": gt_edge}
    for i in range(1, 5):
        out[f"side{i}"] = logits
        out[f"edge{i}"] = gt_edge + 0.5  # MSE = 0.25 per side
    per_output = F.binary_cross_entropy_with_logits(logits, target) + soft_dice(logits, target)
    assert torch.allclose(model.loss(out, target, soft_dice), 5 * per_output + 4 * 0.25)


# ---------------------------------------------------------------------------------- DC-Net

def test_harmonic_loss_two_pixels() -> None:
    # pixel 1: y = 1, p = 0.9 → p_t = 0.9, α_t = 0.25
    # pixel 2: y = 0, p = 0.3 → p_t = 0.7, α_t = 0.75
    prob = torch.tensor([0.9, 0.3])
    target = torch.tensor([1.0, 0.0])

    def h(pt: float, a: float) -> float:
        pt += 1e-6
        return -10 * 1.001 * a * (1 - pt) ** 4 * math.log(pt) / (0.001 + (1 - pt) ** 5)

    l1, l2 = h(0.9, 0.25), h(0.7, 0.75)
    assert 0.02 < l1 < 0.03 and l2 > 1  # ≈ 0.0261; the second exceeds the clamp
    assert math.isclose(float(harmonic_loss(prob, target)), (l1 + (1 - 1e-6)) / 2, rel_tol=1e-5)
    assert math.isclose(float(harmonic_loss(prob, target, clamp=False)), (l1 + l2) / 2,
                        rel_tol=1e-5)


def test_dcp_constant_weight_is_block_sum() -> None:
    pool = DCP(2)
    with torch.no_grad():
        pool.w.weight.zero_()
        pool.w.bias.fill_(0.5)  # w ≡ 0.5 → w̄ ≡ 0.5
    x = torch.arange(32.0).view(1, 2, 4, 4)
    expected = 0.5 * F.avg_pool2d(x, 2) * 4
    assert torch.allclose(pool(x), expected)
    assert torch.allclose(pool(x)[0, 0, 0, 0], torch.tensor(0.5 * (0 + 1 + 4 + 5)))


def test_dcp_neighbourhood_average() -> None:
    pool = DCP(1)
    with torch.no_grad():
        pool.w.weight.zero_()
        pool.w.weight[0, 0, 1, 1] = 1.0  # w = x (2×2 kernel, top/left padding: tap (1,1) = x)
        pool.w.bias.zero_()
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 2, 2] = 3.0  # a single spike in block (1, 1)
    out = pool(x)[0, 0]
    # only block (1,1) has x ≠ 0: out = x·w̄ there, w̄(2,2) = mean of w at (2±2, 2±2) = 3/9
    expected = torch.zeros(3, 3)
    expected[1, 1] = 3.0 * 3.0 / 9.0
    assert torch.allclose(out, expected)


def test_dcnet_loss_composition() -> None:
    model = demo("dcnet")
    _, target = toy_batch()
    gen = torch.Generator().manual_seed(3)
    out = {k: torch.randn(target.shape, generator=gen) for k in ("logits", "fore", "back")}
    expected = (soft_dice(out["logits"], target)
                + harmonic_loss(torch.sigmoid(out["logits"]), target)
                + 0.5 * soft_dice(out["fore"], target) + 0.5 * soft_dice(out["back"], 1 - target))
    assert torch.allclose(model.loss(out, target, soft_dice), expected)


def test_dcnet_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("dcnet", {"us": 1}, 72, variant="demo")


# ------------------------------------------------------------------------- trainer edge cases

@pytest.mark.parametrize("name", SEED_MODELS)
def test_train_step_with_batch_of_one(name: str) -> None:
    # the trainer's last batch can hold one case; 1×1-map BatchNorms must not raise
    model = demo(name).train()
    x, target = toy_batch(batch=1)
    out = model(x)
    assert out["logits"].shape == (1, 1, 64, 64)
    loss = model.loss(out, target, soft_dice)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    params = {n: p for n, p in model.named_parameters() if not n.startswith("adversary")}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())
    before = {n: p.detach().clone() for n, p in params.items()}
    torch.optim.SGD(params.values(), lr=0.1).step()
    assert any(not torch.equal(p, before[n]) for n, p in params.items())  # a real step


def test_any_batch_norm_falls_back_to_running_stats() -> None:
    from iman.models.blocks import BatchNorm2dAnyBatch

    bn = BatchNorm2dAnyBatch(2).train()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    y = bn(torch.tensor([3.0, 0.0]).view(1, 2, 1, 1))
    expected = torch.tensor([(3 - 1) / math.sqrt(4 + bn.eps), (0 + 1) / math.sqrt(1 + bn.eps)])
    assert torch.allclose(y.flatten(), expected)
    assert torch.equal(bn.running_mean, torch.tensor([1.0, -1.0]))  # not updated
    batch = torch.randn(4, 2, 1, 1)
    assert torch.allclose(bn(batch), torch.nn.BatchNorm2d(2).train()(batch), atol=1e-6)


def test_usseg_adversary_accepts_bf16_outputs() -> None:
    # under CUDA autocast the stored outputs are bfloat16; the adversary runs outside autocast
    model = demo("usseg").train()
    x, target = toy_batch()
    out = {k: v.detach().to(torch.bfloat16) for k, v in model(x).items()}
    loss = model.adversary_loss(out, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_usseg_wrong_weight_file_is_an_error_that_names_itself(tmp_path) -> None:
    # it used strict=False and silently loaded nothing from a wrong file
    model = demo("usseg")
    good = tmp_path / "usseg.pt"
    torch.save(model.state_dict(), good)
    again = build_model("usseg", {"us": 1}, 64, "demo", weights=str(good))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  again.state_dict().values()))
    wrong = tmp_path / "other.pt"
    torch.save(demo("ggnet").state_dict(), wrong)
    with pytest.raises(ValueError, match=r"other\.pt is not a US-SEG"):
        build_model("usseg", {"us": 1}, 64, "demo", weights=str(wrong))
