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
