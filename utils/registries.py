"""Name -> implementation registries that the command line reads without importing TensorFlow.

Each value is ``"module:attribute"``, imported on first use. Adding a loss-weighting strategy is its
class in a module plus one line in ``WEIGHTINGS`` (the ``--weighting`` choices come from here); adding
a missing-task strategy is its class in ``utils/missing/`` plus one line in ``MISSING_TASKS`` (the
``--missing`` choices and the strategy's own flags come from here); backbones have their own registry
in ``models/registry.py``.
"""
from __future__ import annotations

import importlib

WEIGHTINGS = {
    "fixed": "utils.weighting:Weighting",
    "uncertainty": "utils.weighting:Uncertainty",
    "dwa": "utils.weighting:DWA",
    "gradnorm": "utils.weighting:GradNorm",
    "famo": "utils.weighting:FAMO",
    "pcgrad": "utils.weighting:PCGrad",
    "mgda": "utils.weighting:MGDA",
    "cagrad": "utils.weighting_cagrad:CAGrad",
    "rlw": "utils.weighting_rlw:RLW",
}

MISSING_TASKS = {
    "naive": "utils.missing.naive:Naive",
    "distilled": "utils.missing.distilled:Distilled",
    "mtl_sa": "utils.missing.mtl_sa:MTLSA",
    "lel_ltn": "utils.missing.lel_ltn:LELLTN",
    "dcn_ap": "utils.missing.dcn_ap:DCNAP",
    "pseudo_label": "utils.missing.pseudo_label:PseudoLabel",
}


def resolve(registry: dict, name: str, what: str):
    """The object registered under ``name``; a ``ValueError`` listing the choices otherwise."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(registry)}")
    module, attribute = registry[name].split(":")
    return getattr(importlib.import_module(module), attribute)
