"""Network builders: backbones (``models.registry``) with named task heads (``models.net``).

The names below are loaded on first use, so that ``models.registry`` (and the command-line parser
that reads it) works without importing TensorFlow. Importing this package (``utils`` does it too) sets
the TensorFlow environment switches first (``configure_environment``).
"""
import os


def configure_environment() -> None:
    """Set process-wide switches that must precede ``import tensorflow``.

    * ``TF_ENABLE_ONEDNN_OPTS=0``: with oneDNN on, training the mini-Xception on some CPUs crashes in
      its first step (``free(): invalid pointer``).
    * ``POT_BACKEND_DISABLE_TENSORFLOW=1``: POT would otherwise import its TF backend (4 s) for nothing.
    * ``TF_CPP_MIN_LOG_LEVEL=2``: keep TensorFlow's C++ start-up chatter out of the run logs; 3 on
      machines without an NVIDIA device, where the only "error" TensorFlow logs is its failed probe
      for CUDA (``failed call to cuInit``), which is not an error there. The engine prints the device.
    Users can override any of them by setting the variable themselves.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("POT_BACKEND_DISABLE_TENSORFLOW", "1")
    no_gpu = not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if no_gpu else "2")


configure_environment()


def import_tensorflow_quietly():
    """Import TensorFlow with the C++ start-up lines (the failed CUDA probe, written before its logging
    is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence it) kept off the console; returns the module.
    Anything TensorFlow prints later still reaches stderr."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("MTL_TF_VERBOSE"):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow

from models.registry import BACKBONES, WeightsError  # noqa: E402

__all__ = ["BACKBONES", "ModelSpec", "WeightsError", "build_net", "feature_model", "import_tensorflow_quietly",
           "load_model", "shift_logits", "trunk_layers"]


def load_model(path):
    """``keras.models.load_model`` (without compiling) with this project's custom layers registered."""
    import keras

    import models.layers  # noqa: F401  (registers Preprocess, CrossStitch, FeatureRegularization)

    return keras.models.load_model(path, compile=False)


def __getattr__(name):
    if name in ("ModelSpec", "build_net", "feature_model", "shift_logits", "trunk_layers"):
        from models import net

        return getattr(net, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
