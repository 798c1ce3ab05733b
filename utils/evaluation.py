"""Held-out evaluation on true labels only: per-task accuracy, loss and confusion matrices."""
from __future__ import annotations

import weakref

import numpy as np

from utils.pipelines import image_dataset
from utils.targets import DEGREE_UNIT, has_label
from utils.tasks import AGE_GROUPS8, ANGLES, POSE5, yaw_to_pose, years_to_group

_FORWARD = weakref.WeakKeyDictionary()  # model -> its compiled inference function


def predict(model, dataset, local: bool = False) -> dict:
    """The model's outputs on a dataset of images, through one compiled forward function per model.

    Faster than ``model.predict`` for the many short passes of training (pseudo labels, validation):
    no per-call data adapter or callbacks. It also runs under MultiWorkerMirroredStrategy, whose
    predict loop Keras 3 does not support (keras-team/keras#20585); every worker holds the full
    weights. (``local`` is accepted for callers that say so; every path is local now.)
    """
    import tensorflow as tf

    forward = _FORWARD.get(model)
    if forward is None:
        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        _FORWARD[model] = forward
    parts = [{k: v.numpy() for k, v in forward(x).items()} for x in dataset]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict_table(model, table, batch_size: int, size: int, channels: int, cache=None, local=False) -> dict:
    """All heads' probabilities on a table's images, in table order (``{task: (N, C)}``)."""
    out = predict(model, image_dataset(table.paths, batch_size, size, channels, cache), local)
    return {k.removesuffix("_prediction"): v for k, v in out.items()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix over every class (rows = truth), even classes absent from the data."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def task_metrics(tables: list, predictions: list, task: str, n_classes: int) -> dict | None:
    """Accuracy, mean cross-entropy and confusion over the tables that label ``task`` (angle tasks:
    ``angle_metrics``)."""
    ys, ps = [], []
    for table, pred in zip(tables, predictions):
        if task in table.labels:
            have = has_label(table.labels[task])
            ys.append(table.labels[task][have])
            ps.append(pred[task][have])
    if not ys or sum(len(y) for y in ys) == 0:
        return None
    y, p = np.concatenate(ys), np.concatenate(ps)
    if y.ndim == 2:
        return angle_metrics(y, p)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))
    pred = p.argmax(axis=1)
    cm = confusion(y, pred, n_classes)
    per_class = np.divide(np.diag(cm), cm.sum(1), out=np.full(n_classes, np.nan), where=cm.sum(1) > 0)
    out = {"acc": float((pred == y).mean()), "loss": loss, "n": int(len(y)), "confusion": cm,
           "per_class_acc": per_class, "balanced_acc": float(np.nanmean(per_class)),
           "expectation_l1": float(np.abs(expected_value(p) - y).mean())}
    if n_classes == 101:  # age in years: decode the expected value (DEX)
        years = expected_value(p)
        out["mae"] = float(np.abs(years - y).mean())
        out["cs5"] = float((np.abs(years - y) <= 5).mean())
        # a 101 x 101 matrix is unreadable: report it over the 8 Adience groups
        to_group = np.vectorize(years_to_group)
        out["confusion"] = confusion(to_group(y), to_group(np.rint(years).astype(int)), len(AGE_GROUPS8))
        out["confusion_names"] = list(AGE_GROUPS8)
    return out


def angle_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Head-pose angles in degrees: MAE per angle and over the angles (``loss``: the training loss,
    MAE in 30-degree units); ``acc`` and the confusion over the 5 yaw bins of ``POSE5``, so that
    regression and the 5-bin classification can be compared in one table."""
    err = np.abs(p - y)
    truth, pred = np.vectorize(yaw_to_pose)(y[:, 0]), np.vectorize(yaw_to_pose)(p[:, 0])
    cm = confusion(truth, pred, len(POSE5))
    per_class = np.divide(np.diag(cm), cm.sum(1), out=np.full(len(POSE5), np.nan), where=cm.sum(1) > 0)
    return {"mae": float(err.mean()), **{f"mae_{a}": float(e) for a, e in zip(ANGLES, err.mean(0))},
            "loss": float(err.mean() / DEGREE_UNIT), "n": int(len(y)), "acc": float((truth == pred).mean()),
            "balanced_acc": float(np.nanmean(per_class)), "per_class_acc": per_class, "confusion": cm,
            "confusion_names": list(POSE5)}


def expected_value(probs: np.ndarray) -> np.ndarray:
    """Softmax expected value over bins 0..C-1 (the age in years for 101 bins)."""
    probs = np.asarray(probs, np.float64)
    return probs @ np.arange(probs.shape[1]) / probs.sum(1)
