"""Trunks from ``keras.applications`` (MobileNetV2; InceptionV3 reuses ``application_trunk``)."""
from __future__ import annotations

from pathlib import Path

import keras

from models.registry import WeightsError


def application_trunk(x, builder, name: str, side: int, weights: str = "none", **kwargs):
    """Apply a ``keras.applications`` network without its top to ``x``; returns pooled features.

    ``weights``: 'none' (random init), 'pretrained' (ImageNet via keras' downloader, with a clear
    error offline) or a local .h5 file.
    """
    if weights == "pretrained":
        spec = "imagenet"
    elif weights == "none":
        spec = None
    elif Path(weights).is_file():
        spec = weights
    else:
        raise WeightsError(f"{name} weights file not found: {weights}")
    try:
        base = builder(input_shape=(side, side, 3), include_top=False, weights=spec, **kwargs)
    except Exception as exc:
        if spec != "imagenet":
            raise
        raise WeightsError(f"{name} ImageNet weights could not be downloaded ({type(exc).__name__}); pass a "
                           f"local weights file with --weights PATH or use --weights none") from None
    base.name = name.lower()
    return keras.layers.GlobalAveragePooling2D(name="global_pool")(base(x))


def mobilenetv2_trunk(x, input_size: int, weights: str = "none", alpha: float = 1.0):
    """MobileNetV2 (no top) on ``x`` (already scaled to [-1, 1]); returns pooled features."""
    return application_trunk(x, keras.applications.MobileNetV2, "MobileNetV2", input_size, weights, alpha=alpha)


def trunk(x, spec):
    """Registry entry point."""
    return mobilenetv2_trunk(x, spec.input_size, spec.weights)
