"""The backbone registry: one line per backbone, readable without importing TensorFlow.

A backbone is a module with a trunk function ``trunk(x, spec) -> tensor`` (``spec`` is the
``ModelSpec``); the registry says its default input, channels, the preprocessing it expects, how
task heads attach: ``dense`` (pooled or flattened features -> shared dense layer -> per-task
branches), ``conv`` (the published mini-Xception's per-task 3x3 conv + global pooling) or ``ssr``
(SSR-Net's own stagewise heads), its default Adam learning rate and the function that loads its
released weights (``--weights``; ``own_weights``: the trunk loads them itself, as keras.applications
do). Adding a backbone = one file + one line here.
"""
from __future__ import annotations

from dataclasses import dataclass


class WeightsError(Exception):
    """Pretrained weights that cannot be found or do not fit; one line for the user."""


@dataclass(frozen=True)
class Backbone:
    input_size: int
    channels: int
    preprocess: str  # mode of models.layers.Preprocess
    head: str  # dense | conv | ssr
    trunk: str  # "module:function"
    lr: float = 1e-3  # default Adam learning rate (--lr)
    weights: str | None = None  # "module:function(model, path_or_name, spec)" loading released weights
    own_weights: bool = False  # the trunk loads --weights itself (keras.applications)


BACKBONES = {
    "vggFace": Backbone(224, 3, "vggface", "dense", "models.vggface:trunk", 1e-4, "models.vggface:load_released"),
    "mini_xception": Backbone(64, 1, "tanh", "conv", "models.mini_xception:trunk",
                              weights="models.mini_xception:load_released"),
    "mobilenetv2": Backbone(96, 3, "tanh", "dense", "models.mobilenetv2:trunk", own_weights=True),
    "inceptionv3": Backbone(96, 3, "tanh", "dense", "models.inceptionv3:trunk", own_weights=True),
    "ssrnet": Backbone(64, 3, "tanh", "ssr", "models.ssrnet:trunk", weights="models.ssrnet:load_released"),
    "efficientnetv2b0": Backbone(96, 3, "tanh", "dense", "models.efficientnet:trunk", own_weights=True),
}
ALIASES = {"vggface": "vggFace", "vgg16": "vggFace", "minixception": "mini_xception",
           "mobilenet_v2": "mobilenetv2", "inception_v3": "inceptionv3", "ssr_net": "ssrnet"}


def canonical_backbone(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(BACKBONES)}")
    return name


def head_kind(name: str) -> str:
    return BACKBONES[canonical_backbone(name)].head


def _attribute(ref: str):
    import importlib

    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


def trunk_function(name: str):
    """The trunk function of a backbone (imports its module, and so TensorFlow)."""
    return _attribute(BACKBONES[canonical_backbone(name)].trunk)


def weight_loader(name: str):
    """The function loading a backbone's released weights, or None when it has none of its own."""
    ref = BACKBONES[canonical_backbone(name)].weights
    return _attribute(ref) if ref else None
