"""Weight files in the upstream formats, written from the upstream architectures installed
here (torchvision, timm) — never from this project's own state dicts.

- torchvision ``resnet18``/``resnet50`` in the legacy (non-zip) format, without
  ``num_batches_tracked`` (as the 2017 files);
- timm's Swin converted to the official release layout (``{"model": ...}``, merging at the
  end of a stage, with the ``attn_mask`` / ``relative_position_index`` buffers);
- timm's ResNeXt state dict (torchvision names);
- an R50+ViT npz written by inverting timm's own npz loader (certified by loading it back
  into timm: the outputs are equal), and the same weights in timm's ``.pth`` layout.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["PAPER_NETS", "fake_r50_vit_npz", "official_swin_names", "paper_state",
           "r50_vit_npz_arrays", "r50_vit_npz_from_timm", "timm_r50_vit", "torchvision_resnet",
           "write_all", "write_paper_files"]


def fake_r50_vit_npz(rng: np.random.Generator, width: int = 32, hidden: int = 64,
                     layers: int = 1, heads: int = 2, mlp: int = 128
                     ) -> dict[str, np.ndarray]:
    """Random arrays under the official R50+ViT-B_16 key names (one unit per stage, 3×3
    grid): a unit fixture for where each npz value lands (the upstream-format file is
    :func:`r50_vit_npz_from_timm`)."""

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    a: dict[str, np.ndarray] = {"conv_root/kernel": r(7, 7, 3, width)}
    a["gn_root/scale"], a["gn_root/bias"] = r(width), r(width)
    cin = width
    for b, cmid in enumerate([width, 2 * width, 4 * width], 1):
        cout = 4 * cmid
        p = f"block{b}/unit1/"
        a[p + "conv1/kernel"] = r(1, 1, cin, cmid)
        a[p + "conv2/kernel"] = r(3, 3, cmid, cmid)
        a[p + "conv3/kernel"] = r(1, 1, cmid, cout)
        a[p + "conv_proj/kernel"] = r(1, 1, cin, cout)
        for g, c in (("gn1", cmid), ("gn2", cmid), ("gn3", cout), ("gn_proj", cout)):
            a[p + g + "/scale"], a[p + g + "/bias"] = r(c), r(c)
        cin = cout
    a["embedding/kernel"], a["embedding/bias"] = r(1, 1, cin, hidden), r(hidden)
    pos = np.zeros((1, 10, hidden), np.float32)
    pos[0, 0] = 99.0  # class token: must be dropped
    pos[0, 1:] = np.repeat(np.arange(3, dtype=np.float32), 3)[:, None]  # value = grid row
    a["Transformer/posembed_input/pos_embedding"] = pos
    a["Transformer/encoder_norm/scale"] = r(hidden)
    a["Transformer/encoder_norm/bias"] = r(hidden)
    d = hidden // heads
    for i in range(layers):
        p = f"Transformer/encoderblock_{i}/"
        att = f"{p}MultiHeadDotProductAttention_1/"
        for n in ("query", "key", "value"):
            a[f"{att}{n}/kernel"], a[f"{att}{n}/bias"] = r(hidden, heads, d), r(heads, d)
        a[f"{att}out/kernel"], a[f"{att}out/bias"] = r(heads, d, hidden), r(hidden)
        a[f"{p}MlpBlock_3/Dense_0/kernel"] = r(hidden, mlp)
        a[f"{p}MlpBlock_3/Dense_0/bias"] = r(mlp)
        a[f"{p}MlpBlock_3/Dense_1/kernel"] = r(mlp, hidden)
        a[f"{p}MlpBlock_3/Dense_1/bias"] = r(hidden)
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            a[f"{p}{ln}/scale"], a[f"{p}{ln}/bias"] = r(hidden), r(hidden)
    a["cls"] = r(1, 1, hidden)  # present in the release, unused for segmentation
    return a


def torchvision_resnet(name: str = "resnet18") -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict as the 2017 files hold it (no num_batches_tracked)."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def save_legacy(state: dict, path: Path) -> Path:
    """``torch.save`` in the legacy (pre-1.6, non-zip) serialisation."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def timm_swin_official(embed_dim: int = 32, depths: tuple[int, ...] = (1, 1, 1, 1),
                       num_heads: tuple[int, ...] = (1, 2, 4, 8), window_size: int = 4,
                       img_size: int = 224) -> dict[str, dict[str, torch.Tensor]]:
    """timm's SwinTransformer converted to the official release layout."""
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(img_size=img_size, embed_dim=embed_dim, depths=depths,
                            num_heads=num_heads, window_size=window_size, num_classes=1000)
    out = {}
    state = dict(model.state_dict())
    for name, buf in model.named_buffers():  # the official file holds the buffers too
        state.setdefault(name, buf)
    for k, v in state.items():
        m = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", k)
        if m:  # timm merges at the start of stage i; the official code at the end of i-1
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        k = k.replace("head.fc.", "head.")
        out[k] = v
    return {"model": out}


def official_swin_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Swin names → the official release's (merging at the end of a stage)."""
    out = {}
    for k, v in state.items():
        m = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", k)
        if m:
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out[k.replace("head.fc.", "head.")] = v
    return out


PAPER_NETS = {
    "resnet50": ("torchvision", "resnet50"),
    "resnext50": ("torchvision", "resnext50_32x4d"),
    "resnext101": ("timm", "resnext101_32x4d"),
    "swin": ("timm", "swin_tiny_patch4_window7_224"),
    "r50vit": ("timm", "vit_base_r50_s16_224.orig_in21k"),
    "resnet18": ("torchvision", "resnet18"),
}
"""The upstream architectures (library, constructor) of the catalogue files, and ResNeXt-50
(the network that shares every name with ResNet-50)."""


def paper_state(name: str, buffers: bool = False) -> dict[str, torch.Tensor]:
    """A paper-size state dict of :data:`PAPER_NETS` ``name``, zero-filled: names and shapes
    from the installed class, built on the meta device (no init, no download). ``buffers``:
    the non-persistent buffers too (the official Swin file holds them)."""
    import timm
    import torchvision

    lib, ctor = PAPER_NETS[name]
    with torch.device("meta"):
        model = (getattr(torchvision.models, ctor)() if lib == "torchvision"
                 else timm.create_model(ctor, pretrained=False))
    state = dict(model.state_dict())
    if buffers:
        for key, buf in model.named_buffers():
            state.setdefault(key, buf)
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}


def r50_vit_npz_arrays() -> dict[str, np.ndarray]:
    """The paper R50+ViT-B/16 in the official npz layout (zero-filled), via
    :func:`r50_vit_npz_from_timm` on timm's ``vit_base_r50_s16_224``."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(PAPER_NETS["r50vit"][1], pretrained=False)
    model.load_state_dict(paper_state("r50vit"), assign=True)
    return r50_vit_npz_from_timm(model)


def write_paper_files(directory: Path) -> dict[str, Path]:
    """Paper-size files in the catalogue's upstream layouts, from the installed classes:
    name → path. ResNet-50 in the 2017 legacy format without ``num_batches_tracked``; Swin-T
    in the official layout (``{"model": ...}`` with its buffers); ResNeXt-101 as timm's
    torch file; R50+ViT as the official npz and as timm's safetensors; ResNeXt-50 (torchvision)
    as safetensors, the network that shares every name with ResNet-50."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    out = {"resnet50": directory / "resnet50_legacy.pth", "swin": directory / "swin_t.pth",
           "resnext101": directory / "resnext101_32x4d.pth",
           "r50vit_npz": directory / "r50_vit.npz",
           "r50vit_st": directory / "r50_vit.safetensors",
           "resnext50_st": directory / "resnext50_32x4d.safetensors"}
    r50 = paper_state("resnet50")
    save_legacy({k: v for k, v in r50.items() if not k.endswith("num_batches_tracked")},
                out["resnet50"])
    torch.save({"model": official_swin_names(paper_state("swin", buffers=True))}, out["swin"])
    torch.save(paper_state("resnext101"), out["resnext101"])
    np.savez(out["r50vit_npz"], **r50_vit_npz_arrays())
    save_file(paper_state("r50vit"), str(out["r50vit_st"]))
    save_file(paper_state("resnext50"), str(out["resnext50_st"]))
    return out


def timm_resnext(name: str = "resnext101_32x4d", **kwargs: object) -> dict[str, torch.Tensor]:
    """timm's ResNeXt state dict (the gluon file's names)."""
    import timm

    torch.manual_seed(0)
    return dict(timm.create_model(name, pretrained=False, **kwargs).state_dict())


TINY_VIT = {"layers": (1, 1, 1), "width": 32, "hidden": 192, "depth": 2, "heads": 4,
            "img_size": 64}
"""A small R50+ViT of timm's hybrid architecture, the shape of TransUNet's demo variant."""


def timm_r50_vit(paper: bool = False) -> nn.Module:
    """timm's ``vit_base_r50_s16_224`` (``paper``) or the same architecture at TINY_VIT."""
    import timm
    from timm.layers import HybridEmbed, StdConv2dSame
    from timm.models.resnetv2 import ResNetV2
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    if paper:
        model = timm.create_model("vit_base_r50_s16_224", pretrained=False)
    else:
        t = TINY_VIT
        w = t["width"]
        bb = ResNetV2(layers=t["layers"], channels=(4 * w, 8 * w, 16 * w), stem_chs=w,
                      num_classes=0, global_pool="", preact=False, stem_type="same",
                      conv_layer=partial(StdConv2dSame, eps=1e-8))
        model = VisionTransformer(img_size=t["img_size"], patch_size=1, embed_dim=t["hidden"],
                                  depth=t["depth"], num_heads=t["heads"], mlp_ratio=4,
                                  embed_layer=partial(HybridEmbed, backbone=bb),
                                  num_classes=0)
    with torch.no_grad():  # non-trivial norms and embeddings (timm inits some to 0/1)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def r50_vit_npz_from_timm(model: nn.Module) -> dict[str, np.ndarray]:
    """The official npz arrays that timm's ``_load_weights`` would read into ``model``:
    its loader inverted, key by key (HWIO kernels, per-head q/k/v, class token)."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def conv(v: np.ndarray) -> np.ndarray:  # _n2p: HWIO -> OIHW, so OIHW -> HWIO
        return v.transpose(2, 3, 1, 0)

    bb = "patch_embed.backbone."
    out["conv_root/kernel"] = conv(sd[bb + "stem.conv.weight"])
    out["gn_root/scale"], out["gn_root/bias"] = sd[bb + "stem.norm.weight"], sd[
        bb + "stem.norm.bias"]
    for i, stage in enumerate(model.patch_embed.backbone.stages):
        for j, block in enumerate(stage.blocks):
            p, q = f"{bb}stages.{i}.blocks.{j}.", f"block{i + 1}/unit{j + 1}/"
            for r in (1, 2, 3):
                out[f"{q}conv{r}/kernel"] = conv(sd[f"{p}conv{r}.weight"])
                out[f"{q}gn{r}/scale"] = sd[f"{p}norm{r}.weight"]
                out[f"{q}gn{r}/bias"] = sd[f"{p}norm{r}.bias"]
            if block.downsample is not None:
                out[f"{q}conv_proj/kernel"] = conv(sd[f"{p}downsample.conv.weight"])
                out[f"{q}gn_proj/scale"] = sd[f"{p}downsample.norm.weight"]
                out[f"{q}gn_proj/bias"] = sd[f"{p}downsample.norm.bias"]
    out["embedding/kernel"] = conv(sd["patch_embed.proj.weight"])
    out["embedding/bias"] = sd["patch_embed.proj.bias"]
    out["cls"] = sd["cls_token"]
    out["Transformer/posembed_input/pos_embedding"] = sd["pos_embed"]
    out["Transformer/encoder_norm/scale"] = sd["norm.weight"]
    out["Transformer/encoder_norm/bias"] = sd["norm.bias"]
    dim = sd["norm.weight"].shape[0]
    heads = model.blocks[0].attn.num_heads
    for i in range(len(model.blocks)):
        p, q = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        att = q + "MultiHeadDotProductAttention_1/"
        out[q + "LayerNorm_0/scale"], out[q + "LayerNorm_0/bias"] = sd[p + "norm1.weight"], sd[
            p + "norm1.bias"]
        out[q + "LayerNorm_2/scale"], out[q + "LayerNorm_2/bias"] = sd[p + "norm2.weight"], sd[
            p + "norm2.bias"]
        qkv_w, qkv_b = np.split(sd[p + "attn.qkv.weight"], 3), np.split(sd[p + "attn.qkv.bias"], 3)
        for n, wt, b in zip(("query", "key", "value"), qkv_w, qkv_b):
            out[att + f"{n}/kernel"] = wt.T.reshape(dim, heads, dim // heads)
            out[att + f"{n}/bias"] = b.reshape(heads, dim // heads)
        out[att + "out/kernel"] = sd[p + "attn.proj.weight"].T.reshape(heads, dim // heads, dim)
        out[att + "out/bias"] = sd[p + "attn.proj.bias"]
        for r in (0, 1):
            out[q + f"MlpBlock_3/Dense_{r}/kernel"] = sd[p + f"mlp.fc{r + 1}.weight"].T
            out[q + f"MlpBlock_3/Dense_{r}/bias"] = sd[p + f"mlp.fc{r + 1}.bias"]
    return out


def certify_npz(model: nn.Module, path: Path, fresh: nn.Module) -> float:
    """Load ``path`` into ``fresh`` with timm's own npz loader; max |output difference|."""
    from timm.models.vision_transformer import _load_weights

    _load_weights(fresh, str(path))
    x = torch.randn(2, 3, *fresh.patch_embed.img_size)
    with torch.no_grad():
        return float((fresh(x) - model(x)).abs().max())


def write_all(directory: Path) -> dict[str, Path]:
    """One demo-sized file per upstream layout under ``directory``; name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {"resnet18": directory / "resnet18-5c106cde.pth",
           "swin": directory / "swin_demo.pth",
           "resnext": directory / "resnext_demo.pth",
           "r50vit": directory / "r50vit_demo.npz",
           "r50vit_timm": directory / "r50vit_demo_timm.pth"}
    save_legacy(torchvision_resnet("resnet18"), out["resnet18"])
    torch.save(timm_swin_official(), out["swin"])
    torch.save(_resnext_for_ggnet_demo(), out["resnext"])
    vit = timm_r50_vit()
    np.savez(out["r50vit"], **r50_vit_npz_from_timm(vit))
    torch.save(vit.state_dict(), out["r50vit_timm"])
    return out


def _resnext_for_ggnet_demo() -> dict[str, torch.Tensor]:
    """timm's ResNet/ResNeXt class at the widths of GG-Net's demo backbone (timm names)."""
    from timm.models.resnet import Bottleneck, ResNet

    from iman.models import get_entry

    kw = get_entry("ggnet").variants["demo"]
    torch.manual_seed(0)
    model = ResNet(block=Bottleneck, layers=tuple(kw["layers"]), cardinality=kw["cardinality"],
                   base_width=kw["base_width"], channels=tuple(kw["channels"]))
    return dict(model.state_dict())
