"""Run a TFLite export without TensorFlow: LiteRT (``ai-edge-litert``) when it is installed, else
TensorFlow's own ``tf.lite`` interpreter. The demos and ``utils/evaluate.py`` read ``.tflite`` files here."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO / "pretrained" / "four_tasks_mini_xception_64px" / "model.keras"  # the demos' default model


class RuntimeError_(Exception):
    """A model file the runtime cannot run; one line for the user."""


@contextmanager
def quiet_stderr():
    """Keep the runtime's C++ notices ("Created TensorFlow Lite XNNPACK delegate for CPU") off the console."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def interpreter(path):
    """A TFLite interpreter for ``path`` with its tensors allocated (LiteRT first: it needs no TensorFlow)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the full install has TensorFlow
        import warnings

        from models import import_tensorflow_quietly

        tf = import_tensorflow_quietly()
        with warnings.catch_warnings():  # its deprecation notice points at LiteRT
            warnings.simplefilter("ignore")
            Interpreter = tf.lite.Interpreter
    with quiet_stderr():
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()  # the delegate is applied here: its notice stays quiet too
    return it


def match_outputs(classes: dict, exported: dict) -> dict:
    """Pair exported outputs with the Keras output keys of ``classes`` (key -> number of classes): by
    name when the names agree, else by class count."""
    pairs = {}
    for key, n in classes.items():
        task = key.removesuffix("_prediction")
        named = [k for k in exported if task in k]
        shaped = [k for k in exported if exported[k].shape[-1] == n and k not in pairs.values()]
        candidates = named or shaped
        if not candidates:
            raise RuntimeError_(f"the export has no output for '{key}' (outputs: {', '.join(exported)})")
        pairs[key] = candidates[0]
    return {key: exported[name] for key, name in pairs.items()}


class TFLiteRunner:
    """A TFLite model called on batches, its outputs keyed like the Keras model's (``<task>_prediction``).

    ``classes``: Keras output key -> number of classes, used to pair the interpreter's anonymous
    outputs with the Keras ones (``match_outputs``). The input is resized only when the batch shape
    changes.
    """

    def __init__(self, path, classes: dict):
        try:
            self.interpreter = interpreter(path)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeError_(f"{path}: not a TFLite model ({str(exc).splitlines()[0][:120]})") from None
        self.classes, self.batch = {k: int(n) for k, n in classes.items()}, None
        self.input = self.interpreter.get_input_details()[0]

    @property
    def input_shape(self) -> tuple:
        """(None, height, width, channels) of the model's input."""
        return (None, *map(int, self.input["shape"][1:]))

    def __call__(self, batch: np.ndarray) -> dict:
        it = self.interpreter
        batch = np.asarray(batch, np.float32)
        if self.batch != batch.shape:
            it.resize_tensor_input(self.input["index"], batch.shape)
            it.allocate_tensors()
            self.batch = batch.shape
        it.set_tensor(self.input["index"], batch)
        it.invoke()
        return match_outputs(self.classes, {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()})
