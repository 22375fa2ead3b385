"""The four segmentation-models-pytorch frameworks of Tables I and V, with margin gating.

UNet, FPN, UNet++ and DeepLabV3 with a configurable encoder (the paper: ResNet-50;
``encoder_weights=None``, nothing is downloaded). ``weights`` may name a local state-dict
file for the encoder. Margin gating (``gate_skips``): every encoder feature the decoder reads
as a skip (all but the input identity and the deepest map) is multiplied by the margin
resized to it. DeepLabV3 has no skips — its decoder reads only the deepest map — so for it
the deepest feature is gated instead (documented deviation: there is nothing else to gate).
"""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import Tensor, nn

from iman.models.injection import gate
from iman.models.registry import ModelEntry, register

__all__ = ["GatedSMP", "build_smp"]

_ARCHS: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "fpn": smp.FPN,
    "unetpp": smp.UnetPlusPlus,
    "deeplabv3": smp.DeepLabV3,
}


class GatedSMP(nn.Module):
    """An smp model whose encoder skips are multiplied by a margin map."""

    def __init__(self, net: nn.Module, gate_deepest: bool) -> None:
        super().__init__()
        self.net = net
        self.gate_deepest = gate_deepest

    def forward(self, x: Tensor, margin: Tensor | None = None) -> Tensor:
        """Encoder → gate skips → decoder → head; logits at the input size."""
        features = self.net.encoder(x)
        last = len(features) if self.gate_deepest else len(features) - 1
        features = [f if i == 0 or i >= last else gate(f, margin) for i, f in enumerate(features)]
        return self.net.segmentation_head(self.net.decoder(features))


def build_smp(
    in_channels: dict[str, int],
    img_size: int,
    arch: str,
    encoder: str = "resnet50",
    weights: str | None = None,
    **kwargs: Any,
) -> GatedSMP:
    """Build one smp framework with random init; optional local encoder weights."""
    channels = sum(in_channels.values())
    net = _ARCHS[arch](encoder_name=encoder, encoder_weights=None, in_channels=channels,
                       classes=1, **kwargs)
    _prune_unused_stages(net.encoder, kwargs.get("encoder_depth", 5))
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        missing, unexpected = net.encoder.load_state_dict(state, strict=False)
        if len(missing) == len(net.encoder.state_dict()):
            raise ValueError(f"{weights}: no encoder weight matched ({len(unexpected)} unused)")
    return GatedSMP(net, gate_deepest=arch == "deeplabv3")


def _prune_unused_stages(encoder: nn.Module, depth: int) -> None:
    """Drop ResNet stages a shallow encoder never runs (smp builds all five)."""
    for stage, name in ((4, "layer3"), (5, "layer4")):
        if depth < stage and hasattr(encoder, name):
            delattr(encoder, name)


def _entry(arch: str, label: str, params_m: float, demo: dict[str, Any]) -> ModelEntry:
    return ModelEntry(
        name=arch,
        build=build_smp,
        variants={
            "paper": {"arch": arch, "encoder": "resnet50"},
            "r18": {"arch": arch, "encoder": "resnet18"},
            "demo": {"arch": arch, **demo},
        },
        paper_params_m=params_m,
        paper_input={"in_channels": {"us": 3}, "img_size": 320},
        description=f"{label} (segmentation-models-pytorch), ResNet-50 encoder in the paper",
    )


# demo: a ResNet-18 cut after its 3rd/4th stage (the rest is never built), narrow decoders
_R18_D3 = {"encoder": "resnet18", "encoder_depth": 3}
register(_entry("unet", "UNet", 32.521105, {**_R18_D3, "decoder_channels": (32, 24, 16)}))
register(_entry("fpn", "FPN", 26.117057, {"encoder": "resnet18", "encoder_depth": 4,
                                          "decoder_pyramid_channels": 64,
                                          "decoder_segmentation_channels": 32, "upsampling": 2}))
register(_entry("unetpp", "UNet++", 48.985745, {**_R18_D3, "decoder_channels": (24, 16, 8)}))
register(_entry("deeplabv3", "DeepLabV3", 39.633729, {**_R18_D3, "decoder_channels": 64}))
