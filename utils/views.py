"""Test-time views: the crops whose outputs a model averages at inference, chosen per head.

An *arm* is a list of views ``(zoom, dx, dy)`` of the model's input crop: zoomed in by ``1 / zoom`` about
a centre moved by ``(dx, dy)`` x its side (replicated border). Every view is read with its mirror image
too (test-time flip; a flip permutes the yaw bins, mapped back by ``utils.tasks.unflip``). All heads read
the same forward passes, so each head may average over its own arm: a model's ``config.json`` names them
in ``test_views`` (e.g. ``{"gender": "scales"}``); a head it leaves out uses ``flip``, the crop alone.
``benchmarks/tta_views.py`` measures every arm per head on validation. No TensorFlow here: the demos use it.
"""
from __future__ import annotations

import numpy as np

ARMS = {
    "flip": [(1.0, 0, 0)],
    # the 10-crop of Krizhevsky et al. (2012) with the whole crop added: centre and corners of a 0.92 zoom-in
    "five_crops": [(1.0, 0, 0), (0.92, 0, 0), (0.92, -0.04, -0.04), (0.92, 0.04, -0.04), (0.92, -0.04, 0.04),
                   (0.92, 0.04, 0.04)],
    "scales": [(0.95, 0, 0), (1.0, 0, 0), (1.05, 0, 0)],
    # as far apart as BlazeFace's keypoints move between a face alone and in a collage (2 % of the side)
    "shifts": [(1.0, 0, 0), (1.0, -0.02, 0), (1.0, 0.02, 0), (1.0, 0, -0.02), (1.0, 0, 0.02)],
}
DEFAULT_ARM = "flip"
IDENTITY = (1.0, 0, 0)
# what a user may ask for: the arms the model's config names per head, the mirror image alone, one pass
VIEW_FLAGS = ("model", "flip", "none")


def view(images: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """``images`` (N, S, S, C) zoomed by ``1 / zoom`` about a centre moved by (dx, dy) x the side S."""
    import cv2

    if (zoom, dx, dy) == IDENTITY:
        return images
    size = images.shape[1]
    s, c = 1.0 / zoom, size / 2
    m = np.array([[s, 0, c - s * (c + dx * size)], [0, s, c - s * (c + dy * size)]], np.float32)
    return np.stack([cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE).reshape(x.shape) for x in images])


def head_arms(config: dict, tasks) -> dict:
    """``{task: arm name}`` for ``tasks`` from a model config's ``test_views`` (``flip`` where it names none)."""
    named = config.get("test_views") or {}
    unknown = {t: a for t, a in named.items() if a not in ARMS}
    if unknown:
        raise ValueError(f"config.json test_views names unknown arms {unknown}; known: {', '.join(ARMS)}")
    return {t: named.get(t, DEFAULT_ARM) for t in tasks}


def views_needed(arms: dict) -> list:
    """The distinct views the heads' arms read, the identity first."""
    needed = [IDENTITY]
    for arm in arms.values():
        needed += [v for v in ARMS[arm] if v not in needed]
    return needed


def per_head(outputs: dict, arms: dict) -> dict:
    """``{task: (V, N, C)}``: for each head the outputs of its arm's views, each with its mirror image.

    ``outputs``: view -> ``(own, mirrored)``, each ``{task: (N, C)}`` with the mirror image's outputs
    already mapped back."""
    return {t: np.stack([o[t] for v in ARMS[arm] for o in outputs[v]]) for t, arm in arms.items()}
