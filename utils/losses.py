"""Masked losses and training metrics for disjoint datasets, one per task kind (``utils/kinds.py``).

A target row of all zeros means "no label for this task" (disjoint datasets: each row labels only
its dataset's tasks). Rows may also be soft (distilled) or scaled (``w * onehot`` pseudo labels);
cross-entropy is taken against the row as given, so a row scaled by ``w`` contributes ``w * CE``.
The mean runs over the rows that carry a target and a batch with none contributes exactly 0 (the
original code divided by zero there).
"""
from __future__ import annotations

import keras
from keras import ops

EPS = 1e-7


def labelled_rows(y_true):
    """1.0 for the rows that carry a target (any non-zero entry), 0.0 for masked rows."""
    return ops.cast(ops.any(ops.not_equal(y_true, 0.0), axis=-1), "float32")


@keras.saving.register_keras_serializable("epga")
def masked_cce(y_true, y_pred):
    """Mean cross-entropy over rows with a non-zero target; a scalar, 0 when no row is labelled."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mask = labelled_rows(y_true)
    probs = ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), EPS, 1.0 - EPS)
    ce = -ops.sum(y_true * ops.log(probs), axis=-1)
    return ops.sum(ce * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable("epga")
def masked_expectation_l1(y_true, y_pred):
    """Mean |E[bin | prediction] - E[bin | target]| over labelled rows (bins indexed 0..C-1).

    With one-hot targets over age bins this is the MAE in years; SSR-Net is trained with it.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mask = labelled_rows(y_true)
    bins = ops.cast(ops.arange(ops.shape(y_true)[-1]), "float32")
    target = ops.sum(y_true * bins, -1) / ops.maximum(ops.sum(y_true, -1), EPS)
    pred = ops.sum(y_pred * bins, -1) / ops.maximum(ops.sum(y_pred, -1), EPS)
    return ops.sum(ops.abs(pred - target) * mask) / ops.maximum(ops.sum(mask), 1.0)


class MaskedValueL1:
    """Weighted mean absolute error of regressed values, in units of ``scale``, over the rows with a
    non-zero weight.

    ``y_true`` rows are ``[values..., w]`` (``utils/targets.py``). A row of weight ``w`` contributes
    ``w * |error|`` and counts once, as a ``w * onehot`` row does in ``masked_cce``; a batch without
    such rows contributes 0.
    """

    def __init__(self, scale: float):
        self.scale = float(scale)
        self.__name__ = "masked_value_l1"

    def __call__(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        w = y_true[:, -1]
        mask = ops.cast(ops.greater(w, 0.0), "float32")
        err = ops.mean(ops.abs(y_pred - y_true[:, :-1]), axis=-1) / self.scale
        return ops.sum(err * w * mask) / ops.maximum(ops.sum(mask), 1.0)


def loss_for(kind, expectation_l1: bool = False):
    """The masked loss a task of ``kind`` trains with: cross-entropy for classes, the expected value's L1
    for years when asked (``--age_loss l1``, SSR-Net), the weighted L1 for regressed values."""
    if kind.regression:
        return MaskedValueL1(kind.scale)
    return masked_expectation_l1 if expectation_l1 else masked_cce


@keras.saving.register_keras_serializable("epga")
class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy of argmax predictions over the rows that carry a target, accumulated over the epoch.

    On training batches, rows filled with pseudo or distilled targets count as agreement with those
    targets; held-out evaluation in the engine uses true labels only.
    """

    def __init__(self, name="acc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = labelled_rows(y_true)
        hit = ops.cast(ops.equal(ops.argmax(y_true, -1), ops.argmax(y_pred, -1)), "float32")
        self.correct.assign(self.correct + ops.sum(hit * mask))
        self.count.assign(self.count + ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable("epga")
class MaskedValueError(MaskedAccuracy):
    """Mean absolute error of regressed values (over the values) of the rows with a non-zero weight."""

    def __init__(self, name="mae", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.greater(y_true[:, -1], 0.0), "float32")
        err = ops.mean(ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true[:, :-1], "float32")), axis=-1)
        self.correct.assign(self.correct + ops.sum(err * mask))
        self.count.assign(self.count + ops.sum(mask))


def metric_for(kind, name: str):
    """The training metric of a task of ``kind``, named ``name`` in the history."""
    return MaskedValueError(name=name) if kind.metric == "mae" else MaskedAccuracy(name=name)
