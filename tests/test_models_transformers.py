"""TransUNet and Swin-Unet: parameter counts, shapes, margin gating, weight loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from weight_files import fake_r50_vit_npz

from iman.models import build_model, count_parameters, get_entry
from iman.models.blocks import WrongWeightsError, standardise
from iman.models.swinunet import SwinBlock, SwinUNet, load_swin_weights, shifted_window_mask
from iman.models.transunet import StdConv2d, TransUNet, load_r50_vit_npz


def paper_model(name: str) -> torch.nn.Module:
    """The paper configuration on the meta device: shapes only, built in well under 1 s."""
    with torch.device("meta"):
        return build_model(name, **get_entry(name).paper_input)


def test_transunet_paper_parameter_count() -> None:
    n = count_parameters(paper_model("transunet"))
    assert n == 105_275_921  # computed from the official definition (peers.md §1.3)
    assert abs(n / 1e6 - get_entry("transunet").paper_params_m) / 105.28 < 0.01


def test_swinunet_paper_parameter_count() -> None:
    model = paper_model("swinunet")
    n = count_parameters(model)
    assert abs(n / 1e6 - get_entry("swinunet").paper_params_m) / 41.38 < 0.01
    assert n == 41_380_068
    # the official decoder mirrors the encoder depths (its depths_decoder is never used)
    assert [len(layer.blocks) for layer in model.layers_up] == [6, 2, 2]
    with torch.device("meta"):
        lite = SwinUNet(3, 224, depths=(2, 2, 2, 2))
    assert abs(count_parameters(lite) / 1e6 - 27.17) < 0.01  # peers.md: "lite" yaml 27.17 M


def test_registry_flags() -> None:
    assert get_entry("transunet").gates_skips is True
    assert get_entry("swinunet").gates_skips is False
    for name in ("transunet", "swinunet"):
        assert {"paper", "demo", "small"} <= set(get_entry(name).variants)


@pytest.mark.parametrize("name", ["transunet", "swinunet"])
@pytest.mark.parametrize("size", [96, 128])
def test_demo_output_shape(name: str, size: int) -> None:
    model = build_model(name, {"us": 1}, size, variant="demo").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, size, size)).shape == (1, 1, size, size)


@pytest.mark.parametrize("name", ["transunet", "swinunet"])
def test_model_built_at_64_runs_at_96(name: str) -> None:
    model = build_model(name, {"us": 1}, 64, variant="demo").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 96, 96)).shape == (1, 1, 96, 96)


def test_swinunet_input_channel_injection() -> None:
    model = build_model("swinunet", {"us": 1}, 64, variant="demo", injection="input_channel")
    assert model.inner.patch_embed.proj.in_channels == 2
    out = model(torch.randn(2, 1, 64, 64), torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 1, 64, 64)


def test_transunet_margin_gates_the_skips() -> None:
    torch.manual_seed(0)
    model = build_model("transunet", {"us": 1}, 64, variant="demo").eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        free = model(x)
        ones = model(x, torch.ones(2, 1, 64, 64))
        zeros = model(x, torch.zeros(2, 1, 64, 64))
    torch.testing.assert_close(ones, free)
    assert (zeros - free).abs().max() > 1e-3

    captured: list[torch.Tensor] = []
    model.decoder[2].conv1.register_forward_hook(lambda m, i, o: captured.append(i[0]))
    with torch.no_grad():
        model(x, torch.zeros(2, 1, 64, 64))
    # decoder block 3 sees [upsampled (32 ch) | gated 1/2-res skip (32 ch)]: skip zeroed
    skip = captured[0][:, 32:]
    assert skip.shape[1] == 32 and skip.abs().max() == 0


def test_swinunet_ignores_margin() -> None:
    model = build_model("swinunet", {"us": 1}, 64, variant="demo").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.zeros(1, 1, 64, 64)), model(x))


def test_swin_window_clamped_to_stage_grid() -> None:
    model = build_model("swinunet", {"us": 1}, 64, variant="demo")
    # grids 16, 8, 4, 2 with window 4: stage 2 keeps 4 without shift, stage 3 clamps to 2
    assert [(b.window, b.shift) for b in model.layers[2].blocks] == [(4, 0)]
    assert model.layers[3].blocks[0].window == 2
    wide = SwinUNet(1, 64, embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1), window_size=4)
    assert [(b.window, b.shift) for b in wide.layers[0].blocks] == [(4, 0), (4, 2)]
    assert [(b.window, b.shift) for b in wide.layers[2].blocks] == [(4, 0), (4, 0)]


def test_shifted_window_mask_matches_official_regions() -> None:
    mask = shifted_window_mask(4, 4, 4, 4, window=2, shift=1)
    assert mask is not None and mask.shape == (4, 4, 4)
    assert mask[0].abs().max() == 0  # top-left window: one region
    # top-right window: columns 2 (band 1) and 3 (band 2); tokens 0,2 vs 1,3
    expected = torch.tensor([[0, -100, 0, -100], [-100, 0, -100, 0]] * 2, dtype=torch.float)
    torch.testing.assert_close(mask[1], expected)
    # bottom-right window: four different regions
    torch.testing.assert_close(mask[3], -100 * (1 - torch.eye(4)))
    assert shifted_window_mask(4, 4, 4, 4, window=2, shift=0) is None


def test_shifted_window_mask_padding() -> None:
    mask = shifted_window_mask(3, 3, 4, 4, window=4, shift=0)
    assert mask is not None and mask.shape == (1, 16, 16)
    real = torch.tensor([r < 3 and c < 3 for r in range(4) for c in range(4)])
    same = real[:, None] == real[None, :]
    torch.testing.assert_close(mask[0], torch.where(same, 0.0, -100.0))


def test_padded_window_equals_smaller_window() -> None:
    """A 4-window on a 3×3 grid (padded, masked) = a 3-window with the matching bias."""
    torch.manual_seed(0)
    kw = {"mlp_ratio": 2.0, "qkv_bias": True, "drop": 0.0, "attn_drop": 0.0, "drop_path": 0.0}
    big = SwinBlock(8, 8, 2, window=4, shift=0, **kw).eval()
    small = SwinBlock(8, 8, 2, window=3, shift=0, **kw).eval()
    state = {k: v for k, v in big.state_dict().items() if "relative_position" not in k}
    small.load_state_dict(state, strict=False)
    table = big.attn.relative_position_bias_table.detach().view(7, 7, 2)[1:6, 1:6]
    with torch.no_grad():
        small.attn.relative_position_bias_table.copy_(table.reshape(25, 2))
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        torch.testing.assert_close(big(x, 3, 3), small(x, 3, 3))


@pytest.mark.slow
def test_swin_encoder_matches_timm_swin_tiny() -> None:
    """Swin-T weights land where they belong: the encoder reproduces timm's features."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    swin_paper = build_model("swinunet", **get_entry("swinunet").paper_input).eval()
    ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0)
    report = load_swin_weights(swin_paper, ref.eval().state_dict())
    assert report.ok and not report.unexpected and not report.mismatched
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        t, h, w = swin_paper.patch_embed(x)
        for layer in swin_paper.layers:
            t, h, w = layer(t, h, w)
        ours = swin_paper.norm(t)
        theirs = ref.forward_features(x).reshape(1, 49, 768)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # decoder layers_up.0 (dim 384, 6 blocks) got stage 2's blocks (mirrored)
    torch.testing.assert_close(
        swin_paper.layers_up[0].blocks[5].attn.qkv.weight, ref.layers[2].blocks[5].attn.qkv.weight
    )


def test_swin_loader_official_and_timm_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SwinUNet(1, 32, embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=2)
    qkv0 = torch.randn(24, 8)
    fc1_2 = torch.randn(128, 32)
    official = {
        "patch_embed.proj.weight": torch.randn(8, 3, 4, 4),  # RGB: wrong channel count
        "patch_embed.norm.weight": torch.full((8,), 2.0),
        "layers.0.blocks.0.attn.qkv.weight": qkv0,
        "layers.0.downsample.reduction.weight": torch.ones(16, 32),
        "layers.2.blocks.0.mlp.fc1.weight": fc1_2,
        "head.weight": torch.randn(1000, 64),
    }
    path = tmp_path / "swin_t.pth"
    torch.save({"model": official}, path)
    m, report = model, load_swin_weights(model, path)
    assert torch.equal(m.layers[0].blocks[0].attn.qkv.weight, qkv0)
    assert torch.equal(m.layers_up[2].blocks[0].attn.qkv.weight, qkv0)  # mirrored, dim 8
    assert torch.equal(m.layers_up[0].blocks[0].mlp.fc1.weight, fc1_2)  # mirrored, dim 32
    assert torch.equal(m.layers[0].downsample.reduction.weight, torch.ones(16, 32))
    assert torch.equal(m.patch_embed.norm.weight, torch.full((8,), 2.0))
    # the RGB patch embedding is summed over RGB for the 1-channel (grey) model
    torch.testing.assert_close(m.patch_embed.proj.weight,
                               official["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert report.unexpected == ["head.weight"] and report.mismatched == []
    assert len(report.loaded) == 7
    assert "patch_embed.proj.bias" in report.missing and not report.ok  # a partial file
    # through the registry a partial file is an error that names the file and the gaps
    gaps = r"(?s)swin_t\.pth is not a Swin-T.*62 missing.*missing: patch_embed"
    with pytest.raises(WrongWeightsError, match=gaps):
        build_model_from_path(path)

    timm_style = {
        "layers.1.downsample.reduction.weight": torch.full((16, 32), 3.0),
        "layers.3.downsample.reduction.weight": torch.full((64, 128), 4.0),
        "head.fc.weight": torch.randn(1000, 64),
    }
    report = load_swin_weights(model, timm_style)
    assert torch.equal(model.layers[0].downsample.reduction.weight, torch.full((16, 32), 3.0))
    assert torch.equal(model.layers[2].downsample.reduction.weight, torch.full((64, 128), 4.0))
    assert report.unexpected == ["head.fc.weight"]


def build_model_from_path(path: Path) -> SwinUNet:
    """The same tiny Swin-Unet, weights given through the registry's ``weights`` kwarg."""
    from iman.models.swinunet import build_swinunet

    kw = {"embed_dim": 8, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1), "window_size": 2}
    return build_swinunet({"us": 1}, 32, weights=str(path), **kw)


TINY_TU = {
    "resnet_units": (1, 1, 1),
    "width": 32,
    "hidden": 64,
    "layers": 1,
    "heads": 2,
    "mlp_dim": 128,
    "head_channels": 32,
    "decoder_channels": (32, 16, 16, 16),
}


def test_transunet_npz_round_trip(tmp_path: Path) -> None:
    arrays = fake_r50_vit_npz(np.random.default_rng(0))
    path = tmp_path / "R50+ViT-B_16.npz"
    np.savez(path, **arrays)
    model = TransUNet(3, 64, **TINY_TU)
    report = load_r50_vit_npz(model, path)
    assert report.ok and report.mismatched == [] and report.missing == []
    assert report.unexpected == ["cls"] and len(report.loaded) == len(arrays) - 1

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key])

    blk = model.blocks[0]
    att = "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/"
    # query: out feature 33 = head 1, dim 1; in feature 5
    assert blk.attn.query.weight[33, 5] == t(att + "query/kernel")[5, 1, 1]
    assert blk.attn.value.bias[40] == t(att + "value/bias")[1, 8]
    # out: in feature 40 = head 1, dim 8; out feature 7
    assert blk.attn.out.weight[7, 40] == t(att + "out/kernel")[1, 8, 7]
    mlp = "Transformer/encoderblock_0/MlpBlock_3/"
    assert blk.ffn.fc1.weight[100, 3] == t(mlp + "Dense_0/kernel")[3, 100]
    assert torch.equal(blk.ffn_norm.weight, t("Transformer/encoderblock_0/LayerNorm_2/scale"))
    conv2 = model.resnet.stages[1][0].conv2.weight
    assert conv2[10, 20, 0, 2] == t("block2/unit1/conv2/kernel")[0, 2, 20, 10]
    proj = model.resnet.stages[2][0].downsample.weight
    assert torch.equal(proj[:, :, 0, 0], t("block3/unit1/conv_proj/kernel")[0, 0].T)
    assert torch.equal(model.resnet.stages[0][0].gn_proj.bias, t("block1/unit1/gn_proj/bias"))
    assert torch.equal(model.resnet.root_conv.weight, t("conv_root/kernel").permute(3, 2, 0, 1))
    # 3×3 grid of row values 0,1,2 → 4×4 (aligned corners): rows 0, 2/3, 4/3, 2; no class token
    pe = model.pos_embed.detach().view(4, 4, 64)
    torch.testing.assert_close(pe[:, 2, 5], torch.tensor([0.0, 2 / 3, 4 / 3, 2.0]))
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_transunet_npz_root_conv_by_channels() -> None:
    """The root conv is weight-standardised: its *effective* kernel (gain x standardised
    weight) is the standardised pretrained kernel adapted to the input channels (the exact
    responses: tests/test_weights_faults.py)."""
    arrays = fake_r50_vit_npz(np.random.default_rng(1))
    kernel = torch.from_numpy(arrays["conv_root/kernel"]).permute(3, 2, 0, 1)
    pretrained = standardise(kernel, StdConv2d.EPS)

    def effective(model: TransUNet) -> torch.Tensor:
        conv = model.resnet.root_conv
        return conv.gain * standardise(conv.weight, StdConv2d.EPS)

    grey = TransUNet(1, 64, **TINY_TU)
    assert load_r50_vit_npz(grey, arrays).ok
    torch.testing.assert_close(effective(grey), pretrained.sum(1, keepdim=True),
                               atol=1e-5, rtol=1e-4)
    # 5 frames, each grey repeated to RGB (ImageNet input): tiled and divided by 5, so five
    # identical frames give the pretrained response
    ceus = TransUNet(15, 64, **TINY_TU)
    assert load_r50_vit_npz(ceus, arrays).ok
    torch.testing.assert_close(effective(ceus), pretrained.repeat(1, 5, 1, 1) / 5,
                               atol=1e-5, rtol=1e-4)
    assert torch.equal(ceus.resnet.root_gn.weight, torch.from_numpy(arrays["gn_root/scale"]))
    # RGB + a margin channel (input_channel injection): the extra channel has no effect
    margin = TransUNet(4, 64, **TINY_TU)
    assert load_r50_vit_npz(margin, arrays).ok
    torch.testing.assert_close(effective(margin)[:, :3], pretrained, atol=1e-5, rtol=1e-4)
    assert effective(margin)[:, 3].abs().max() < 1e-6


def test_transunet_npz_shape_mismatch_is_reported() -> None:
    arrays = fake_r50_vit_npz(np.random.default_rng(2))
    wider = TransUNet(3, 64, **{**TINY_TU, "hidden": 96, "heads": 3})
    report = load_r50_vit_npz(wider, arrays)
    assert any(s.startswith("embedding/kernel") for s in report.mismatched)
    assert "block1/unit1/conv1/kernel" in report.loaded and not report.ok
    with pytest.raises(WrongWeightsError, match="is not a R50"):
        report.check()
