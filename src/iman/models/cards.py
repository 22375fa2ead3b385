"""Cards of the in-tree methods, each named by an ``iman.methods`` entry point in
``pyproject.toml`` (the same path a plug-in package takes).

Light on purpose: plain data and ``"module:function"`` references; importing this module
imports no model code and no torch. The paper variant is ``{}`` where the constructor's
defaults are the paper's architecture.
"""

from __future__ import annotations

from typing import Any

from iman.models.registry import MethodCard
from iman.names import MODALITIES

__all__ = ["aaunet", "ceusegnet", "dcnet", "deeplabv3", "dpran", "fpn", "ggnet", "nunet",
           "swinunet", "transunet", "unet", "unetpp", "usseg"]

_M = "iman.models"


def _smp(arch: str, label: str, params_m: float, demo: dict[str, Any],
         size_multiple: int | dict[str, int] = 1) -> MethodCard:
    """One segmentation-models-pytorch framework (ResNet-50 encoder in the paper)."""
    return MethodCard(
        name=arch,
        label=label,
        build=f"{_M}.smp_models:build_smp",
        variants={
            "paper": {"arch": arch, "encoder": "resnet50"},
            "r18": {"arch": arch, "encoder": "resnet18"},
            "demo": {"arch": arch, **demo},
        },
        paper_params_m=params_m,
        paper_input={"in_channels": {"us": 3}, "img_size": 320},
        description=f"{label} (segmentation-models-pytorch), ResNet-50 encoder in the paper",
        load_weights=f"{_M}.smp_models:load_encoder_weights",
        size_multiple=size_multiple,
    )


# demo: a ResNet-18 cut after its 3rd/4th stage (the rest is never built), narrow decoders
_R18_D3 = {"encoder": "resnet18", "encoder_depth": 3}
unet = _smp("unet", "UNet", 32.521105, {**_R18_D3, "decoder_channels": (32, 24, 16)})
fpn = _smp("fpn", "FPN", 26.117057, {"encoder": "resnet18", "encoder_depth": 4,
                                     "decoder_pyramid_channels": 64,
                                     "decoder_segmentation_channels": 32, "upsampling": 2},
           {"paper": 32, "r18": 32, "demo": 16})
unetpp = _smp("unetpp", "UNet++", 48.985745, {**_R18_D3, "decoder_channels": (24, 16, 8)},
              {"paper": 32, "r18": 32, "demo": 8})
deeplabv3 = _smp("deeplabv3", "DeepLabV3", 39.633729, {**_R18_D3, "decoder_channels": 64})

_TRANSUNET_TINY: dict[str, Any] = {
    "resnet_units": (1, 1, 1), "width": 32, "hidden": 192, "layers": 2, "heads": 4,
    "mlp_dim": 768, "head_channels": 128, "decoder_channels": (64, 32, 16, 16),
}
transunet = MethodCard(
    name="transunet",
    label="TransUNet",
    build=f"{_M}.transunet:build_transunet",
    variants={
        "paper": {},
        "small": {"resnet_units": (2, 2, 3), "width": 32, "hidden": 256, "layers": 4,
                  "heads": 4, "mlp_dim": 1024, "head_channels": 256,
                  "decoder_channels": (128, 64, 32, 16)},
        "tiny": _TRANSUNET_TINY,
        "demo": _TRANSUNET_TINY,
    },
    modalities=MODALITIES,
    gates_skips=True,
    paper_params_m=105.28,
    paper_input={"in_channels": {"us": 3}, "img_size": 224},
    description="TransUNet R50-ViT-B/16; IMAN's backbone, margin gates the 3 CNN skips",
    family="framework",
    load_weights=f"{_M}.transunet:load_r50_vit",
    size_multiple=32,
)

swinunet = MethodCard(
    name="swinunet",
    label="SwinUNet",
    build=f"{_M}.swinunet:build_swinunet",
    variants={
        "paper": {},
        "small": {"embed_dim": 48, "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24),
                  "window_size": 4},
        "demo": {"embed_dim": 32, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8),
                 "window_size": 4},
    },
    modalities=MODALITIES,
    gates_skips=False,
    paper_params_m=41.38,
    paper_input={"in_channels": {"us": 3}, "img_size": 224},
    description="Swin-Unet (Swin-T encoder [2,2,6,2], mirrored decoder); margin as input",
    family="framework",
    load_weights=f"{_M}.swinunet:load_swin_weights",
    size_multiple=32,
)

aaunet = MethodCard(
    name="aaunet",
    label="AAU-net",
    build=f"{_M}.aaunet:build_aaunet",
    variants={"paper": {}, "demo": {"widths": (4, 8, 16, 32, 64)}},
    modalities=("us",),
    gates_skips=True,
    paper_params_m=None,  # the paper publishes no count (ours: tests/test_models_ultrasound.py)
    paper_input={"in_channels": {"us": 3}, "img_size": 384},
    description="AAU-net: U-net with HAAM blocks (assumed 5-level, 64-1024 wiring; TMI 2023)",
    family="us",
    size_multiple=16,
)

nunet = MethodCard(
    name="nunet",
    label="NU-net",
    build=f"{_M}.nunet:build_nunet",
    variants={"paper": {}, "demo": {"widths": (8, 16, 16, 32, 32, 64), "shortcut": 8}},
    modalities=("us",),
    gates_skips=True,
    paper_params_m=77.052833,
    paper_input={"in_channels": {"us": 3}, "img_size": 384},
    description="NU-net: nested U-net with side sub-networks, 7 poolings (Pattern Recogn. 23)",
    family="us",
)

usseg = MethodCard(
    name="usseg",
    label="US-SEG (seed)",
    build=f"{_M}.usseg:build_usseg",
    variants={
        "paper": {},
        "demo": {"widths": (8, 16, 32, 64, 128), "disc_widths": (4, 8, 16, 32), "beta": 0.005},
    },
    modalities=("us",),
    gates_skips=True,
    paper_params_m=31.04,
    paper_input={"in_channels": {"us": 1}, "img_size": 256},
    description="US-SEG: UNet + 4-stage Dice deep supervision + per-stage discriminators",
    family="seed",
    size_multiple=16,
)

ggnet = MethodCard(
    name="ggnet",
    label="GG-Net (seed)",
    build=f"{_M}.ggnet:build_ggnet",
    variants={
        "paper": {},
        "demo": {"layers": (1, 1, 1, 1), "cardinality": 4, "base_width": 16,
                 "channels": (8, 16, 32, 64), "side_ch": 16, "aspp_ch": 32, "low_ch": 8},
    },
    modalities=("us",),
    gates_skips=True,
    paper_params_m=40.94,
    paper_input={"in_channels": {"us": 3}, "img_size": 256},
    description="GG-Net: DeepLabV3+ (ResNeXt-101 32x4d) + global guidance block + "
                "boundary detection",
    family="seed",
    load_weights=f"{_M}.ggnet:load_ggnet_weights",
)

dcnet = MethodCard(
    name="dcnet",
    label="DC-Net (seed)",
    build=f"{_M}.dcnet:build_dcnet",
    variants={"paper": {}, "demo": {"base": 4}},
    modalities=("us",),
    gates_skips=True,
    paper_params_m=54.413607,
    paper_input={"in_channels": {"us": 1}, "img_size": 256},
    description="DC-Net: decomposition-coupling network with DCP, DaR coupler, CCF and "
                "harmonic loss",
    family="seed",
    size_multiple=16,
)

dpran = MethodCard(
    name="dpran",
    label="DpRAN",
    build=f"{_M}.dpran:build_dpran",
    variants={"paper": {}, "demo": {"widths": (8, 8, 16, 32), "patch": 5, "dilation": 2,
                                    "dim": 8}},
    modalities=("ceus",),
    gates_skips=True,
    paper_params_m=1.484586,
    paper_input={"in_channels": {"ceus": 5}, "img_size": 336},
    description="DpRAN: perfusion excitation + cross-attention temporal aggregation (JBHI 23)",
    family="ceus",
    size_multiple=16,
)

ceusegnet = MethodCard(
    name="ceusegnet",
    label="CEUSegNet",
    build=f"{_M}.ceusegnet:build_ceusegnet",
    variants={"paper": {}, "demo": {"widths": (8, 8, 16, 32, 32)}},
    modalities=("ceus",),
    inputs=MODALITIES,
    gates_skips=True,
    paper_params_m=9.281,
    paper_input={"in_channels": {"us": 1, "ceus": 1}, "img_size": 128},
    description="CEUSegNet: dual US/CEUS encoders with CSA + CFF, one decoder (ISBI 2022)",
    family="ceus",
    size_multiple=16,
)
