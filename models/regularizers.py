"""Differentiable matrix regularisers of the manifold baselines (SFSMR, SLRM), in Keras ops.

All take batch matrices (rows = samples) and return scalars, so they can act on the training batch
inside the graph (the reference fed a numpy constant as a target, which had zero gradient).
"""
from __future__ import annotations

from keras import ops


def l21_norm(m):
    """||M||_{2,1} = sum over columns of the column's L2 norm (feature selection across samples)."""
    return ops.sum(ops.sqrt(ops.sum(ops.square(m), axis=0) + 1e-12))


def nuclear_norm(m):
    """Sum of singular values (trace norm) of ``m``."""
    return ops.sum(ops.svd(m, compute_uv=False))


def laplacian_smoothness(features, probs, sigma: float = 0.5):
    """tr(P^T L P) / B with L = D - S, S_ij = exp(-||f_i - f_j||^2 / (2 sigma^2)), S_ii = 0.

    Features are L2-normalised first so that ``sigma`` has a fixed scale. Equals
    (1 / 2B) sum_ij S_ij ||p_i - p_j||^2: similar samples are pushed to similar predictions.
    """
    f = features / (ops.norm(features, axis=-1, keepdims=True) + 1e-12)
    sq = ops.sum(ops.square(f), axis=-1)
    d2 = ops.maximum(sq[:, None] + sq[None, :] - 2.0 * ops.matmul(f, ops.transpose(f)), 0.0)
    b = ops.shape(features)[0]
    s = ops.exp(-d2 / (2.0 * sigma ** 2)) * (1.0 - ops.eye(b))
    lap = ops.diag(ops.sum(s, axis=-1)) - s
    quad = ops.trace(ops.matmul(ops.matmul(ops.transpose(probs), lap), probs))
    return quad / ops.cast(b, "float32")


def feature_penalty(feats, preds, l21=0.0, trace=0.0, nuclear=0.0, laplacian=0.0, sigma=0.5):
    """Weighted sum of the enabled penalties over the task feature matrices of one batch."""
    b = ops.cast(ops.shape(feats[0])[0], "float32")
    total = ops.convert_to_tensor(0.0)
    stacked = ops.concatenate(list(feats), axis=-1) if (l21 or trace) else None
    if l21:
        total = total + l21 * l21_norm(stacked) / b
    if trace:
        total = total + trace * nuclear_norm(stacked) / b
    if nuclear:
        total = total + nuclear * sum(nuclear_norm(f) for f in feats) / b
    if laplacian:
        total = total + laplacian * sum(laplacian_smoothness(f, p, sigma) for f, p in zip(feats, preds))
    return total
