"""EfficientNetV2-B0 (Tan and Le, ICML 2021) from ``keras.applications`` as a backbone.

``--weights pretrained`` asks keras for the ImageNet weights (offline: a clear error; pass a local
``.h5`` with ``--weights PATH``); the default trains from scratch. Input: RGB in [-1, 1], 96 px by
default; the application's own rescaling is switched off because the model's preprocessing layer
already scales the pixels.
"""
from __future__ import annotations

import keras

from models.mobilenetv2 import application_trunk


def trunk(x, spec):
    """Registry entry point: pooled EfficientNetV2-B0 features."""
    return application_trunk(x, keras.applications.EfficientNetV2B0, "EfficientNetV2B0", spec.input_size,
                             spec.weights, include_preprocessing=False)
