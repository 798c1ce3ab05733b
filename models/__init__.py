"""Network builders: backbones (``models.registry``) with named task heads (``models.net``).

The names below are loaded on first use, so that ``models.registry`` (and the command-line parser
that reads it) works without importing TensorFlow.
"""
import utils  # noqa: F401  (sets TensorFlow environment switches before keras is imported)
from models.registry import BACKBONES, WeightsError

__all__ = ["BACKBONES", "ModelSpec", "WeightsError", "build_net", "feature_model", "load_model", "trunk_layers"]


def load_model(path):
    """``keras.models.load_model`` (without compiling) with this project's custom layers registered."""
    import keras

    import models.layers  # noqa: F401  (registers Preprocess, CrossStitch, FeatureRegularization)

    return keras.models.load_model(path, compile=False)


def __getattr__(name):
    if name in ("ModelSpec", "build_net", "feature_model", "trunk_layers"):
        from models import net

        return getattr(net, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
