"""VGGFace (VGG16) trunk with the keras-vggface layer names, and its weight loader.

``keras_vggface`` does not import under Keras 3, so the 13 conv + 5 pool layers are declared here
with the same names (``conv1_1`` .. ``conv5_3``, ``pool1`` .. ``pool5``) and the published
``rcmalli_vggface_tf_notop_vgg16.h5`` is read by layer name with h5py.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import keras
import numpy as np

from models.registry import WeightsError

WEIGHTS_FILE = "rcmalli_vggface_tf_notop_vgg16.h5"
WEIGHTS_URL = f"https://github.com/rcmalli/keras-vggface/releases/download/v2.0/{WEIGHTS_FILE}"
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vggface_trunk(x, weight_decay: float = 0.0):
    """Apply the VGG16 conv trunk to ``x``; returns the ``pool5`` tensor."""
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    for b, (filters, n_conv) in enumerate(BLOCKS, start=1):
        for c in range(1, n_conv + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    kernel_regularizer=reg, name=f"conv{b}_{c}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    return x


def trunk(x, spec):
    """Registry entry point: the VGG16 trunk, flattened (the keras-vggface ``flatten`` layer)."""
    return keras.layers.Flatten(name="flatten")(vggface_trunk(x, spec.weight_decay))


def resolve_weights(weights: str) -> str:
    """Local path of the VGGFace weights for ``--weights`` = 'pretrained' or a file path.

    'pretrained' looks at ``$VGGFACE_WEIGHTS``, then the keras-vggface cache
    (``~/.keras/models/vggface/``), then tries to download; offline it fails with instructions.
    """
    if weights != "pretrained":
        if not Path(weights).is_file():
            raise WeightsError(f"VGGFace weights file not found: {weights}")
        return weights
    candidates = [os.environ.get("VGGFACE_WEIGHTS"),
                  str(Path.home() / ".keras" / "models" / "vggface" / WEIGHTS_FILE)]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    try:
        return keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models/vggface")
    except Exception as exc:  # no network, proxy, HTTP error ...
        raise WeightsError(
            f"VGGFace weights {WEIGHTS_FILE} are not available locally and could not be downloaded "
            f"({type(exc).__name__}). Download {WEIGHTS_URL} and pass --vggface_weights PATH (or set "
            f"VGGFACE_WEIGHTS), or train from scratch with --weights none") from None


def load_weights_by_name(model: keras.Model, path: str, require=("conv1_1", "conv5_3")) -> list:
    """Copy weights from a Keras-2 style .h5 file into the layers of ``model`` with the same name.

    Works for both layouts Keras 2 wrote (weights at the root or under ``model_weights``).
    Returns the names of the layers that were loaded.
    """
    loaded = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]]
        for name in names:
            try:
                layer = model.get_layer(name)
            except ValueError:
                continue
            group = root[name]
            wnames = [w.decode() if isinstance(w, bytes) else w for w in group.attrs["weight_names"]]
            if not wnames:
                continue
            arrays = [np.asarray(group[w]) for w in wnames]
            expected = [tuple(w.shape) for w in layer.weights]
            if [a.shape for a in arrays] != expected:
                raise WeightsError(f"{path}: layer '{name}' has shapes {[a.shape for a in arrays]}, "
                                   f"the model expects {expected}")
            layer.set_weights(arrays)
            loaded.append(name)
    missing = [r for r in require if r not in loaded]
    if missing:
        raise WeightsError(f"{path}: no weights for layers {missing}; is it a VGGFace (vgg16) file?")
    return loaded


def load_released(model: keras.Model, weights: str, spec) -> None:
    """Registry loader: the keras-vggface file, found as ``resolve_weights`` says."""
    load_weights_by_name(model, resolve_weights(weights))
