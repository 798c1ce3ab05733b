"""MobileNetV2 trunk from ``keras.applications`` (optional ImageNet weights from a local file)."""
from __future__ import annotations

from pathlib import Path

import keras

from models.vggface import WeightsError


def mobilenetv2_trunk(x, input_size: int, weights: str = "none", alpha: float = 1.0):
    """Apply MobileNetV2 (no top) to ``x`` (already scaled to [-1, 1]); returns pooled features.

    ``weights``: 'none' (random init), 'pretrained' (ImageNet via keras' downloader), or a local .h5.
    """
    if weights == "pretrained":
        spec = "imagenet"
    elif weights == "none":
        spec = None
    elif Path(weights).is_file():
        spec = weights
    else:
        raise WeightsError(f"MobileNetV2 weights file not found: {weights}")
    try:
        base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), include_top=False,
                                              weights=spec, alpha=alpha)
    except Exception as exc:
        if spec != "imagenet":
            raise
        raise WeightsError(f"MobileNetV2 ImageNet weights could not be downloaded ({type(exc).__name__}); "
                           f"pass a local weights file with --weights PATH or use --weights none") from None
    base.name = "mobilenetv2"
    return keras.layers.GlobalAveragePooling2D(name="global_pool")(base(x))
