"""InceptionV3 trunk from ``keras.applications`` (no classifier), for the age/gender models of the seeds."""
from __future__ import annotations

from pathlib import Path

import keras

from models.vggface import WeightsError

MIN_SIDE = 75  # keras.applications.InceptionV3 needs at least 75 x 75


def inceptionv3_trunk(x, input_size: int, weights: str = "none"):
    """Apply InceptionV3 to ``x`` (scaled to [-1, 1]); returns pooled 2048-d features.

    Inputs smaller than 75 px are resized up inside the model. ``weights``: none, pretrained
    (ImageNet via keras' downloader) or a local .h5 file.
    """
    side = max(input_size, MIN_SIDE)
    if side != input_size:
        x = keras.layers.Resizing(side, side, name="inception_resize")(x)
    if weights == "pretrained":
        spec = "imagenet"
    elif weights == "none":
        spec = None
    elif Path(weights).is_file():
        spec = weights
    else:
        raise WeightsError(f"InceptionV3 weights file not found: {weights}")
    try:
        base = keras.applications.InceptionV3(input_shape=(side, side, 3), include_top=False, weights=spec)
    except Exception as exc:
        if spec != "imagenet":
            raise
        raise WeightsError(f"InceptionV3 ImageNet weights could not be downloaded ({type(exc).__name__}); "
                           f"pass a local weights file with --weights PATH or use --weights none") from None
    base.name = "inceptionv3"
    return keras.layers.GlobalAveragePooling2D(name="global_pool")(base(x))
