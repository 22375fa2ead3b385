"""Synthetic pretrained files with the real key layouts (torchvision/timm/official names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from iman.models import build_model


def fake_r50_vit_npz(rng: np.random.Generator, width: int = 32, hidden: int = 64,
                     layers: int = 1, heads: int = 2, mlp: int = 128
                     ) -> dict[str, np.ndarray]:
    """An npz with the official R50+ViT-B_16 key names (one unit per stage), 3×3 grid."""

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


def torchvision_resnet18() -> dict[str, torch.Tensor]:
    """A torchvision ``resnet18`` state dict (random values, real names and shapes)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    state = smp.encoders.get_encoder("resnet18", in_channels=3, depth=5, weights=None)
    sd = dict(state.state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return sd


def official_swin(variant: str = "demo") -> dict[str, dict[str, torch.Tensor]]:
    """A Swin checkpoint in the official release layout (``{"model": ...}``, classifier
    head) for the encoder of our ``variant``."""
    model = build_model("swinunet", {"us": 3}, 224, variant)  # verify builds at 224
    sd = {k: torch.randn_like(v) for k, v in model.state_dict().items()
          if k.startswith(("patch_embed.", "layers.", "norm."))}
    dim = sd["norm.weight"].shape[0]
    sd["head.weight"], sd["head.bias"] = torch.randn(1000, dim), torch.randn(1000)
    return {"model": sd}


def timm_resnext_for_ggnet(variant: str = "demo") -> dict[str, torch.Tensor]:
    """A timm-named ResNeXt state dict (conv1/bn1/layer1-4/fc) fitting GG-Net's backbone."""
    model = build_model("ggnet", {"us": 3}, 64, variant)
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("stem.0."):
            sd["conv1." + k[7:]] = torch.randn_like(v.float()).to(v.dtype)
        elif k.startswith("stem.1."):
            sd["bn1." + k[7:]] = torch.rand_like(v.float()).to(v.dtype)
        elif k.startswith(("layer1.", "layer2.", "layer3.")):
            sd[k] = torch.rand_like(v.float()).to(v.dtype)
    sd["layer4.0.conv1.weight"] = torch.randn(8, 8, 1, 1)  # unused by GG-Net
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 8), torch.randn(1000)
    return sd


def write_all(directory: Path) -> dict[str, Path]:
    """Write one file per layout under ``directory``; name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {"resnet18": directory / "resnet18-5c106cde.pth",
           "swin": directory / "swin_demo.pth",
           "resnext": directory / "resnext_demo.pth",
           "r50vit": directory / "r50vit_demo.npz"}
    torch.save(torchvision_resnet18(), out["resnet18"])
    torch.save(official_swin(), out["swin"])
    torch.save(timm_resnext_for_ggnet(), out["resnext"])
    tiny = {"width": 32, "hidden": 192, "layers": 2, "heads": 4, "mlp": 768}  # transunet demo
    np.savez(out["r50vit"], **fake_r50_vit_npz(np.random.default_rng(0), **tiny))
    return out
