"""The backbone registry: one line per backbone, readable without importing TensorFlow.

A backbone is a module with a trunk function ``trunk(x, spec) -> tensor`` (``spec`` is the
``ModelSpec``); the registry says its default input, channels, the preprocessing it expects and how
task heads attach: ``dense`` (pooled or flattened features -> shared dense layer -> per-task
branches), ``conv`` (the published mini-Xception's per-task 3x3 conv + global pooling) or ``ssr``
(SSR-Net's own stagewise heads). Adding a backbone = one file + one line here.
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
    own_weights: bool = False  # the trunk loads --weights itself (keras.applications)


BACKBONES = {
    "vggFace": Backbone(224, 3, "vggface", "dense", "models.vggface:trunk"),
    "mini_xception": Backbone(64, 1, "tanh", "conv", "models.mini_xception:trunk"),
    "mobilenetv2": Backbone(96, 3, "tanh", "dense", "models.mobilenetv2:trunk", own_weights=True),
    "inceptionv3": Backbone(96, 3, "tanh", "dense", "models.inceptionv3:trunk", own_weights=True),
    "ssrnet": Backbone(64, 3, "tanh", "ssr", "models.ssrnet:trunk"),
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


def trunk_function(name: str):
    """The trunk function of a backbone (imports its module, and so TensorFlow)."""
    import importlib

    module, func = BACKBONES[canonical_backbone(name)].trunk.split(":")
    return getattr(importlib.import_module(module), func)
