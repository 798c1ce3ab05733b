"""Target rows built with numpy only (no TensorFlow), shared by the pipelines and the pseudo labels."""
from __future__ import annotations

import numpy as np


def onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows; label -1 (missing) gives a zero row."""
    out = np.zeros((len(labels), n_classes), np.float32)
    have = labels >= 0
    out[np.flatnonzero(have), labels[have]] = 1.0
    return out
