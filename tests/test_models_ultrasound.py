"""Tests for the US/CEUS-specific comparison methods: CEUSegNet, AAU-net, NU-net, DpRAN."""

from __future__ import annotations

import math

import pytest
import torch

from iman.models import aaunet, ceusegnet, dpran, nunet
from iman.models.registry import count_parameters, get_entry

NAMES = ("ceusegnet", "aaunet", "nunet", "dpran")

# Published or computed figures (peers.md). AAU-net has none: see OUR_AAUNET_PARAMS.
PAPER_PARAMS = {
    "ceusegnet": 9_281_025,
    "nunet": 77_052_833,
    "dpran": 1_484_586,  # stage 2 1,041,289 + stage-1 frame segmenter 443,297
}


def _channels(name: str, frames: int = 5) -> dict[str, int]:
    entry = get_entry(name)
    return {m: (1 if m == "us" else frames) for m in entry.consumed(entry.modalities[0])}


def _build(name: str, variant: str = "demo", size: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = get_entry(name)
    return entry.constructor()(_channels(name), size, **entry.variants[variant])


OUR_AAUNET_PARAMS = 116_807_946
"""OUR count for AAU-net's assumed 5-level 64-1024 wiring (3 ch, 384 px): a regression figure
for our implementation, not a paper figure (the AAU-net paper and code publish none)."""


@pytest.mark.parametrize("name", [n for n in NAMES if n in PAPER_PARAMS])
def test_paper_parameter_count(name: str) -> None:
    entry = get_entry(name)
    # large models on the meta device (no memory, no init); kaiming init is slow there
    device = "meta" if name in ("aaunet", "nunet") else "cpu"
    with torch.device(device):
        paper = entry.paper_input
        model = entry.constructor()(paper["in_channels"], paper["img_size"],
                                    **entry.variants["paper"])
    n = count_parameters(model)
    assert n == PAPER_PARAMS[name]
    assert abs(n / 1e6 - entry.paper_params_m) / entry.paper_params_m < 0.01


def test_aaunet_parameter_count_is_ours_not_the_papers() -> None:
    entry = get_entry("aaunet")
    assert entry.paper_params_m is None  # no published count to compare with
    with torch.device("meta"):  # no memory, no (slow) init
        paper = entry.paper_input
        model = entry.constructor()(paper["in_channels"], paper["img_size"],
                                    **entry.variants["paper"])
    assert count_parameters(model) == OUR_AAUNET_PARAMS  # regression figure of our wiring


def test_registry_metadata() -> None:
    assert get_entry("ceusegnet").inputs == ("us", "ceus")
    assert get_entry("ceusegnet").modalities == ("ceus",)
    assert get_entry("dpran").modalities == ("ceus",)
    assert get_entry("aaunet").modalities == ("us",)
    assert get_entry("nunet").modalities == ("us",)
    for name in NAMES:
        assert get_entry(name).gates_skips
        assert {"paper", "demo"} <= set(get_entry(name).variants)


@pytest.mark.parametrize("name", NAMES)
def test_demo_variants_at_other_sizes(name: str) -> None:
    model = _build(name).eval()
    c = sum(_channels(name).values())
    with torch.no_grad():
        for size in (96, 160):
            assert model(torch.randn(1, c, size, size)).shape == (1, 1, size, size)


def test_nunet_paper_pads_to_a_multiple_of_128_and_has_2368_bottleneck() -> None:
    assert nunet._pad_to(320, 320, 128) == (32, 32, 32, 32)  # the paper's 320 px -> 384
    assert nunet._pad_to(64, 100, 128) == (14, 14, 32, 32)
    with torch.device("meta"):
        model = nunet.build_nunet({"us": 3}, 384)
    assert model.dec[0][0].in_channels == 512 + 2368  # skip M_6 + 7-map bottleneck
    assert model.dec[1][0].in_channels == (512 + 512) + 512  # M_5 + side chain 5 + up
    assert len(model.chains) == 6 and [len(c) for c in model.chains] == [6, 5, 4, 3, 2, 1]


def test_nunet_paper_variant_runs_forward_and_backward_at_the_papers_320_px() -> None:
    with torch.device("meta"):  # shapes only: the paper network at IMAN's input size
        model = nunet.build_nunet({"us": 3}, 320)
        out = model(torch.randn(2, 3, 320, 320), torch.rand(2, 1, 320, 320))
        out.sum().backward()
    assert out.shape == (2, 1, 320, 320)
    assert model.head.weight.grad is not None


def test_haam_block_matches_formula() -> None:
    block = aaunet.HAAM(64, 64)
    assert count_parameters(block) == 275_905
    for c, f in ((3, 64), (1536, 512), (5, 7)):
        expected = 43 * c * f + 24 * f * f + 23 * f + 1
        assert aaunet.haam_param_count(c, f) == expected
        with torch.device("meta"):
            assert count_parameters(aaunet.HAAM(c, f)) == expected


def test_haam_trains_with_batch_of_one() -> None:
    block = aaunet.HAAM(2, 4).train()
    out = block(torch.randn(1, 2, 8, 8))
    assert out.shape == (1, 4, 8, 8)


def test_csa_weights_hand_computed_and_non_uniform() -> None:
    csa = ceusegnet.CrossModalSegAttention(2)
    with torch.no_grad():
        csa.w_ceus.weight.copy_(torch.eye(2))
        csa.w_us.weight.copy_(torch.eye(2))
    f_ceus = torch.tensor([2.0, 0.0])[None, :, None, None].expand(1, 2, 3, 3).clone()
    f_us = torch.ones(1, 2, 3, 3)
    # product = [2, 0], scaled by 1/sqrt(2) -> softmax([sqrt 2, 0])
    e = math.exp(math.sqrt(2.0))
    expected = torch.tensor([[e / (e + 1.0), 1.0 / (e + 1.0)]])
    w = csa.weights(f_ceus, f_us)
    assert torch.allclose(w, expected, atol=1e-6)
    assert torch.allclose(csa(f_ceus, f_us), f_ceus * (1.0 + expected[:, :, None, None]))

    torch.manual_seed(1)
    csa = ceusegnet.CrossModalSegAttention(16)
    w = csa.weights(torch.randn(3, 16, 4, 4) * 3, torch.randn(3, 16, 4, 4) * 3)
    assert torch.allclose(w.sum(1), torch.ones(3))
    assert (w.max(1).values - w.min(1).values > 1e-3).all()  # not the public code's 1/C


def test_cff_rejects_channels_not_divisible_by_4() -> None:
    with pytest.raises(ValueError):
        ceusegnet.CrossModalFusion(6)


def test_ceusegnet_splits_us_and_ceus_channels() -> None:
    model = ceusegnet.build_ceusegnet({"us": 1, "ceus": 3}, 64, widths=(8, 8, 16, 32, 32)).eval()
    assert model.enc_us.inc[0].in_channels == 1
    assert model.enc_ceus.inc[0].in_channels == 3
    x = torch.randn(1, 4, 64, 64)
    y = x.clone()
    y[:, 1:] = torch.randn(1, 3, 64, 64)  # change the CEUS frames only
    with torch.no_grad():
        assert not torch.allclose(model(x), model(y))
    with pytest.raises(ValueError):
        model(torch.randn(1, 5, 64, 64))


def _direct_correlation(f1: torch.Tensor, f2: torch.Tensor, patch: int, dil: int) -> torch.Tensor:
    n, c, h, w = f1.shape
    out = torch.zeros(n, patch * patch, h, w, dtype=f1.dtype)
    half = patch // 2
    for b in range(n):
        for iy in range(patch):
            for ix in range(patch):
                dy, dx = (iy - half) * dil, (ix - half) * dil
                for y in range(h):
                    for x in range(w):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            out[b, iy * patch + ix, y, x] = sum(
                                f1[b, k, y, x] * f2[b, k, y + dy, x + dx] for k in range(c)
                            )
    return out


def test_spatial_correlation_matches_direct_loop() -> None:
    torch.manual_seed(0)
    f1 = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    f2 = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    for patch, dil in ((3, 1), (3, 2), (5, 1)):
        got = dpran.spatial_correlation(f1, f2, patch, dil)
        assert torch.allclose(got, _direct_correlation(f1, f2, patch, dil))


def test_spatial_correlation_hand_case() -> None:
    f1 = torch.zeros(1, 1, 3, 3)
    f1[0, 0, 1, 1] = 2.0
    f2 = torch.arange(9.0).reshape(1, 1, 3, 3)
    out = dpran.spatial_correlation(f1, f2, 3, 1)
    # at the centre pixel, displacement (dy, dx) reads f2[1+dy, 1+dx] -> 2 * f2 values
    assert torch.equal(out[0, :, 1, 1], 2.0 * torch.arange(9.0))
    assert out[0, :, 0, 0].abs().sum() == 0  # f1 is zero there


def test_temporal_encoding_values() -> None:
    enc = dpran.temporal_encoding(3, 4)
    assert torch.allclose(enc[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    second = [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]
    assert torch.allclose(enc[1], torch.tensor(second))


def test_perfusion_excitation_last_frame_zero() -> None:
    pe = dpran.PerfusionExcitation(out_channels=4, patch=3, dilation=1).eval()
    out = pe(torch.randn(2, 3, 5, 8, 8))
    assert out.shape == (2, 3, 4, 8, 8)
    assert out[:, -1].abs().sum() == 0
    assert out[:, 0].abs().sum() > 0


def test_dpran_independent_of_batch_composition() -> None:
    model = _build("dpran").eval()
    torch.manual_seed(3)
    x = torch.randn(3, 5, 64, 64)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
        reordered = model(x.flip(0))
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    assert torch.allclose(together, reordered.flip(0), atol=1e-5)


def test_dpran_uses_frame_order() -> None:
    model = _build("dpran").eval()
    torch.manual_seed(4)
    x = torch.randn(1, 5, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x[:, [4, 1, 2, 3, 0]]), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_local_weight_file_round_trips_and_a_wrong_one_is_named(name: str, tmp_path) -> None:
    """A saved state dict reloads exactly; another variant's file fails naming the file."""
    from iman.models.registry import build_model

    chans = _channels(name)
    model = _build(name).eval()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    again = build_model(name, chans, 64, "demo", weights=str(path)).eval()
    x = torch.randn(1, sum(chans.values()), 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"w\.pt is not a .* state dict"):
        build_model(name, chans, 64, "demo", weights=str(path))


def test_critical_frame_has_lowest_foreground_entropy() -> None:
    probs = torch.zeros(3, 4, 2, 2)
    probs[0, 0] = torch.tensor([[0.6, 0.0], [0.0, 0.0]])  # foreground, uncertain
    probs[0, 2] = torch.tensor([[0.99, 0.95], [0.0, 0.0]])  # foreground, confident
    probs[0, 3] = torch.tensor([[0.4, 0.4], [0.4, 0.4]])  # no foreground: never chosen
    probs[1, 1] = torch.tensor([[0.9, 0.0], [0.0, 0.0]])
    probs[1, 3] = torch.tensor([[0.9, 0.9], [0.9, 0.9]])  # same mean entropy: first wins
    # sample 2: no foreground in any frame -> the middle frame
    assert dpran.critical_frames(probs).tolist() == [2, 1, 2]


def test_dpran_stage_two_matches_the_published_count_without_stage_one() -> None:
    kw = {**get_entry("dpran").variants["paper"], "query": "middle"}
    model = dpran.build_dpran({"ceus": 5}, 336, **kw)
    assert model.stage1 is None and count_parameters(model) == 1_041_289
    with pytest.raises(ValueError, match="query must be one of"):
        dpran.build_dpran({"ceus": 5}, 64, query="first")


def test_dpran_stage_one_chooses_the_query_frame() -> None:
    torch.manual_seed(0)
    critical = _build("dpran").eval()
    middle = dpran.build_dpran({"ceus": 5}, 64, **{**get_entry("dpran").variants["demo"],
                                                   "query": "middle"}).eval()
    middle.load_state_dict(critical.state_dict(), strict=False)
    x = torch.randn(2, 5, 64, 64)
    head = critical.stage1.head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)  # no foreground anywhere: the middle frame, as `middle`
        assert torch.allclose(critical(x), middle(x), atol=1e-6)
        head.bias.fill_(3.0)  # equal entropy everywhere: frame 0, not the middle one
        assert not torch.allclose(critical(x), middle(x), atol=1e-4)


def test_dpran_stage_one_learns_only_from_its_own_frame_loss() -> None:
    from iman.training.losses import dice_loss

    model = _build("dpran").train()
    x, y = torch.randn(2, 5, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = model(x)
    assert out["frames"].shape == (2, 5, 64, 64)
    dice_loss(out["logits"], y).backward(retain_graph=True)
    assert all(p.grad is None for p in model.stage1.parameters())  # choice is detached
    model.zero_grad()
    total = model.loss(out, y, dice_loss)
    per_frame = dice_loss(out["frames"].reshape(10, 1, 64, 64), y.repeat_interleave(5, 0))
    assert torch.allclose(total, dice_loss(out["logits"], y) + per_frame)
    total.backward()
    assert all(p.grad is not None for p in model.stage1.parameters())
