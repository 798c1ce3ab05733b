"""Target rows built with numpy only (no TensorFlow), shared by the pipelines and the pseudo labels.

A task's target row says what the masked loss trains on; an all-zero row means "no label".
Classes (and years): one-hot, soft (distilled) or ``w * onehot`` (weighted pseudo label) rows of
width C. Degrees (head-pose angles): ``[angle_1 .. angle_k, w]``, the angles in degrees and the row's
weight ``w`` in the last column (1 for a true label, the pseudo label's weight, 0 = missing).
"""
from __future__ import annotations

import numpy as np


def onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows; label -1 (missing) gives a zero row."""
    out = np.zeros((len(labels), n_classes), np.float32)
    have = labels >= 0
    out[np.flatnonzero(have), labels[have]] = 1.0
    return out


def degree_rows(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``[angles..., w]`` rows from (N, k) angles in degrees; a row with a NaN angle is missing (zero)."""
    values = np.asarray(values, np.float32).reshape(len(values), -1)
    have = ~np.isnan(values).any(1)
    w = np.ones(len(values), np.float32) if weights is None else np.asarray(weights, np.float32)
    out = np.zeros((len(values), values.shape[1] + 1), np.float32)
    out[have, :-1] = values[have]
    out[have, -1] = w[have]
    return out


def smooth_years(rows: np.ndarray, sigma: float) -> np.ndarray:
    """Replace one-hot age rows by a Gaussian of width ``sigma`` years around the true age.

    Zero (missing) and soft (pseudo / distilled) rows are left as they are.
    """
    rows = rows.copy()
    hot = (rows.max(1) == 1.0) & (rows.sum(1) == 1.0)
    if hot.any():
        centre = rows[hot].argmax(1)[:, None]
        g = np.exp(-0.5 * ((np.arange(rows.shape[1])[None, :] - centre) / sigma) ** 2)
        rows[hot] = g / g.sum(1, keepdims=True)
    return rows


BALANCE_POWER = {"none": 0.0, "sqrt": 0.5, "inverse": 1.0}  # --class_balance -> the power of class_weights


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """Per-class weights ``(mean count / count_c) ** power`` over the labelled rows (-1 ignored), rescaled so
    that the labelled rows' mean weight is 1 (the loss keeps its scale); classes without rows get 1."""
    labels = labels[labels >= 0]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.ones(n_classes)
    have = counts > 0
    w[have] = (counts[have].mean() / counts[have]) ** power
    mean = (w[labels]).mean() if len(labels) else 1.0
    return (w / mean).astype(np.float32)


def reshape_true_rows(rows: np.ndarray, smoothing: float = 0.0, weights: np.ndarray | None = None) -> np.ndarray:
    """One-hot rows of true labels with label smoothing ``(1 - eps) onehot + eps / K`` and per-class
    ``weights`` applied (rows that are not one-hot, i.e. missing, pseudo or distilled, are left alone)."""
    rows = rows.copy()
    hot = (rows.max(1) == 1.0) & (rows.sum(1) == 1.0)
    if not hot.any():
        return rows
    scale = weights[rows[hot].argmax(1)][:, None] if weights is not None else 1.0
    if smoothing > 0:
        rows[hot] = (1.0 - smoothing) * rows[hot] + smoothing / rows.shape[1]
    rows[hot] = rows[hot] * scale
    return rows
