"""DCN-AP style refinement of pseudo labels with a Markov random field (arXiv 1609.06426, sec. 3).

The samples form a k-nearest-neighbour graph (cosine similarity of task features). The unary
potential of sample i is ``-log p_i`` from the model, the pairwise term is a Potts reward
``lambda * S_ij * [y_i = y_j]``. Mean-field inference updates ``Q_i ∝ p_i * exp(lambda * sum_j S_ij Q_j)``
for a few iterations; the refined marginals replace the raw probabilities.
"""
from __future__ import annotations

import numpy as np


def knn_graph(features: np.ndarray, k: int = 10):
    """Indices (n, k) and cosine similarities (n, k, clipped at 0) of each sample's neighbours."""
    from sklearn.neighbors import NearestNeighbors

    f = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    k = min(k, len(f) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(f).kneighbors(f)
    sim = np.clip(1.0 - dist[:, 1:] ** 2 / 2.0, 0.0, 1.0)  # |a - b|^2 = 2 - 2 cos for unit vectors
    return idx[:, 1:], sim


def mean_field(probs: np.ndarray, features: np.ndarray, k: int = 10, strength: float = 1.0,
               iterations: int = 5) -> np.ndarray:
    """Refined class marginals (rows sum to 1) after ``iterations`` mean-field updates."""
    probs = np.asarray(probs, np.float64)
    if len(probs) < 2:
        return probs.astype(np.float32)
    idx, sim = knn_graph(np.asarray(features, np.float64), k)
    log_unary = np.log(np.clip(probs, 1e-8, 1.0))
    q = probs.copy()
    for _ in range(iterations):
        message = np.einsum("nk,nkc->nc", sim, q[idx])
        z = log_unary + strength * message
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
    return q.astype(np.float32)
