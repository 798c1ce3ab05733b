"""Target rows built with numpy only (no TensorFlow), shared by the pipelines and the pseudo labels."""
from __future__ import annotations

import numpy as np


def onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows; label -1 (missing) gives a zero row."""
    out = np.zeros((len(labels), n_classes), np.float32)
    have = labels >= 0
    out[np.flatnonzero(have), labels[have]] = 1.0
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
