"""Masked losses and metrics for disjoint datasets.

A target row of all zeros means "no label for this task" (disjoint datasets: each row labels only
its dataset's tasks). Rows may also be soft (distilled) or scaled (``w * onehot`` pseudo labels);
cross-entropy is taken against the row as given, so a row scaled by ``w`` contributes ``w * CE``.
The mean runs over the rows that carry a target and a batch with none contributes exactly 0 (the
original code divided by zero there).
"""
from __future__ import annotations

import keras
from keras import ops

from utils.targets import DEGREE_UNIT

EPS = 1e-7


@keras.saving.register_keras_serializable("epga")
def masked_cce(y_true, y_pred):
    """Mean cross-entropy over rows with a non-zero target; a scalar, 0 when no row is labelled."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mask = ops.cast(ops.any(ops.not_equal(y_true, 0.0), axis=-1), "float32")
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
    mask = ops.cast(ops.any(ops.not_equal(y_true, 0.0), axis=-1), "float32")
    bins = ops.cast(ops.arange(ops.shape(y_true)[-1]), "float32")
    target = ops.sum(y_true * bins, -1) / ops.maximum(ops.sum(y_true, -1), EPS)
    pred = ops.sum(y_pred * bins, -1) / ops.maximum(ops.sum(y_pred, -1), EPS)
    return ops.sum(ops.abs(pred - target) * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable("epga")
def masked_degrees_l1(y_true, y_pred):
    """Weighted mean absolute angle error (in ``DEGREE_UNIT``) over the rows with a non-zero weight.

    ``y_true`` rows are ``[angles..., w]`` (``utils/targets.py``); ``y_pred`` the angles in degrees.
    A row of weight ``w`` contributes ``w * |error|`` and counts once, as a ``w * onehot`` row does in
    ``masked_cce``; a batch without such rows contributes 0.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    w = y_true[:, -1]
    mask = ops.cast(ops.greater(w, 0.0), "float32")
    err = ops.mean(ops.abs(y_pred - y_true[:, :-1]), axis=-1) / DEGREE_UNIT
    return ops.sum(err * w * mask) / ops.maximum(ops.sum(mask), 1.0)


LOSSES = {"ce": masked_cce, "l1": masked_expectation_l1, "degrees": masked_degrees_l1}


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
        mask = ops.cast(ops.any(ops.not_equal(y_true, 0.0), axis=-1), "float32")
        hit = ops.cast(ops.equal(ops.argmax(y_true, -1), ops.argmax(y_pred, -1)), "float32")
        self.correct.assign(self.correct + ops.sum(hit * mask))
        self.count.assign(self.count + ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable("epga")
class MaskedAngleError(MaskedAccuracy):
    """Mean absolute angle error in degrees (over the angles) of the rows with a non-zero weight."""

    def __init__(self, name="mae", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.greater(y_true[:, -1], 0.0), "float32")
        err = ops.mean(ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true[:, :-1], "float32")), axis=-1)
        self.correct.assign(self.correct + ops.sum(err * mask))
        self.count.assign(self.count + ops.sum(mask))
