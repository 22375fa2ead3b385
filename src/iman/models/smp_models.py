"""The four segmentation-models-pytorch frameworks of Tables I and V, with margin gating.

UNet, FPN, UNet++ and DeepLabV3 with a configurable encoder (the paper: ResNet-50;
``encoder_weights=None``, nothing is downloaded here). ``weights`` names a local ImageNet
state dict of the encoder (torchvision / smp layout, ``iman weights fetch``); its RGB first
conv is adapted to the input channels (:func:`~iman.models.blocks.adapt_first_conv`), and a
file that leaves an encoder tensor unfilled is an error naming the file.

Margin gating (``gate_skips``): every encoder feature the decoder reads
as a skip (all but the input identity and the deepest map) is multiplied by the margin
resized to it. DeepLabV3 has no skips — its decoder reads only the deepest map — so for it
the deepest feature is gated instead (documented deviation: there is nothing else to gate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
from torch import Tensor, nn

from iman.models.blocks import LoadReport, load_report, read_state_file
from iman.models.injection import gate

__all__ = ["GatedSMP", "build_smp", "load_encoder_weights"]

_ARCHS: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "fpn": smp.FPN,
    "unetpp": smp.UnetPlusPlus,
    "deeplabv3": smp.DeepLabV3,
}


class GatedSMP(nn.Module):
    """An smp model whose encoder skips are multiplied by a margin map."""

    def __init__(self, net: nn.Module, gate_deepest: bool, encoder: str = "") -> None:
        super().__init__()
        self.net = net
        self.gate_deepest = gate_deepest
        self.encoder_name = encoder

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
    model = GatedSMP(net, gate_deepest=arch == "deeplabv3", encoder=encoder)
    if weights:
        load_encoder_weights(model, weights).check()
    return model


def load_encoder_weights(model: GatedSMP, path: str | Path) -> LoadReport:
    """Load an ImageNet encoder state dict (classifier ``fc`` dropped); report every key.

    Every encoder tensor must be filled; stages a shallow (demo) encoder never builds are
    reported as unused file tensors.
    """
    state = {k: v for k, v in read_state_file(path).items() if not k.startswith("fc.")}
    report = load_report(model.net.encoder, state, str(path), f"{model.encoder_name} encoder",
                         first_conv="conv1.weight")
    report.unexpected = [k for k in report.unexpected if not k.startswith(("layer3.", "layer4."))
                         or hasattr(model.net.encoder, k.split(".")[0])]
    return report


def _prune_unused_stages(encoder: nn.Module, depth: int) -> None:
    """Drop ResNet stages a shallow encoder never runs (smp builds all five)."""
    for stage, name in ((4, "layer3"), (5, "layer4")):
        if depth < stage and hasattr(encoder, name):
            delattr(encoder, name)
