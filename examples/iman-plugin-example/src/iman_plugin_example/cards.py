"""The card of the example method: plain data, no torch import.

The constructor is named by reference (``"module:function"``) and imported only when a model
is built, so reading this card costs nothing to config validation or the Snakefile parse.
"""

from __future__ import annotations

from iman.models.registry import MethodCard

__all__ = ["example_unet"]

example_unet = MethodCard(
    name="example_unet",
    label="Example U-net (plug-in)",
    build="iman_plugin_example.net:build_example_unet",
    variants={
        "paper": {"widths": (32, 64, 128, 256)},  # required: the full-size network
        "demo": {"widths": (8, 16, 32)},  # the demo/smoke scale (config: {default: demo})
    },
    modalities=("us", "ceus"),  # it can predict either branch
    inputs=None,  # None: it consumes the modality it predicts
    gates_skips=True,  # forward(x, margin) multiplies its skips by the margin
    paper_params_m=None,  # no published count
    paper_input={"in_channels": {"us": 1}, "img_size": 128},
    description="Example plug-in: a small U-net (2 convs per level), margin-gated skips",
    family="example",
)
