"""InceptionV3 trunk from ``keras.applications`` (no classifier), for the age/gender models of the seeds."""
from __future__ import annotations

import keras

from models.mobilenetv2 import application_trunk

MIN_SIDE = 75  # keras.applications.InceptionV3 needs at least 75 x 75


def inceptionv3_trunk(x, input_size: int, weights: str = "none"):
    """InceptionV3 (no top) on ``x`` (scaled to [-1, 1]); returns pooled 2048-d features.

    Inputs smaller than 75 px are resized up inside the model.
    """
    side = max(input_size, MIN_SIDE)
    if side != input_size:
        x = keras.layers.Resizing(side, side, name="inception_resize")(x)
    return application_trunk(x, keras.applications.InceptionV3, "InceptionV3", side, weights)


def trunk(x, spec):
    """Registry entry point."""
    return inceptionv3_trunk(x, spec.input_size, spec.weights)
