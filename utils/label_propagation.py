"""DCN-AP's annotation propagation: labels spread from the labelled dataset to the unlabelled one.

The rows of both datasets form one k-nearest-neighbour graph over the task features (L2-normalised);
label spreading (Zhou, Bousquet, Lal, Weston and Schoelkopf, NIPS 2003) iterates
F <- alpha S F + (1 - alpha) Y with the labelled rows' one-hot labels in Y and the normalised graph
S, so a missing label comes from the labelled faces it is connected to, not from the model's own
head. ``utils.mrf.mean_field`` then refines the propagated marginals on the unlabelled rows (the
MRF step of DCN-AP, arXiv 1609.06426, sec. 3).
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def propagate(feat_l: np.ndarray, y_l: np.ndarray, feat_u: np.ndarray, n_classes: int, k: int = 10,
              alpha: float = 0.2, max_labelled: int = 20000, seed: int = 1) -> np.ndarray:
    """Class marginals (n_u, n_classes) of the unlabelled rows after label spreading.

    At most ``max_labelled`` labelled rows (a seeded, class-stratified-by-chance sample) take part,
    which bounds the graph for big datasets. Classes absent from the labelled sample get probability 0.
    """
    from sklearn.semi_supervised import LabelSpreading

    keep = np.flatnonzero(y_l >= 0)
    if len(keep) > max_labelled:
        keep = np.random.default_rng(seed).choice(keep, max_labelled, replace=False)
    feats = np.concatenate([feat_l[keep], feat_u]).astype(np.float64)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-12
    y = np.concatenate([y_l[keep], np.full(len(feat_u), -1)])
    model = LabelSpreading(kernel="knn", n_neighbors=min(k, len(feats) - 1), alpha=alpha, max_iter=50)
    model.fit(feats, y)
    dist = model.label_distributions_[len(keep):]
    out = np.zeros((len(feat_u), n_classes), np.float32)
    out[:, model.classes_] = dist
    out /= np.maximum(out.sum(1, keepdims=True), 1e-12)
    empty = out.sum(1) == 0  # rows no labelled path reaches: uniform
    out[empty] = 1.0 / n_classes
    return out
