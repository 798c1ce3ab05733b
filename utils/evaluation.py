"""Held-out evaluation on true labels only: per-task accuracy, loss and confusion matrices."""
from __future__ import annotations

import sys
import weakref

import numpy as np

from utils.kinds import KINDS
from utils.pipelines import image_dataset

_FORWARD = weakref.WeakKeyDictionary()  # model -> its compiled inference function


def predict(model, dataset, progress: bool = False) -> dict:
    """The model's outputs on a dataset of images, through one compiled forward function per model.

    Faster than ``model.predict`` for the many short passes of training (pseudo labels, validation):
    no per-call data adapter or callbacks. It also runs under MultiWorkerMirroredStrategy, whose
    predict loop Keras 3 does not support (keras-team/keras#20585); every worker holds the full
    weights.
    """
    if progress:
        from tqdm import tqdm

        dataset = tqdm(dataset, desc="predicting", unit="batch", leave=False, file=sys.stderr, disable=None)
    if hasattr(model, "predict_batches"):  # a TFLite export (utils/evaluate.py)
        return model.predict_batches(dataset)
    import tensorflow as tf

    forward = _FORWARD.get(model)
    if forward is None:  # traced once for any batch size (validation's and the teacher's batches differ)
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        _FORWARD[model] = forward
    parts = [{k: v.numpy() for k, v in forward(x).items()} for x in dataset]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict_table(model, table, batch_size: int, size: int, channels: int, cache=None, progress: bool = False) -> dict:
    """All heads' probabilities on a table's images, in table order (``{task: (N, C)}``)."""
    out = predict(model, image_dataset(table.paths, batch_size, size, channels, cache), progress)
    return {k.removesuffix("_prediction"): v for k, v in out.items()}


def task_metrics(tables: list, predictions: list, task: str, n_classes: int, kind: str) -> dict | None:
    """The task kind's held-out metrics (``utils/kinds.py``) over the tables that label ``task``.

    ``kind``: classes | years | degrees (``kind_of(vocabulary).name``); it also says which rows are labelled.
    """
    ys, ps = [], []
    for table, pred in zip(tables, predictions):
        if task in table.labels:
            have = KINDS[kind].labelled(table.labels[task])
            ys.append(table.labels[task][have])
            ps.append(pred[task][have])
    if not ys or sum(len(y) for y in ys) == 0:
        return None
    y, p = np.concatenate(ys), np.concatenate(ps)
    return KINDS[kind].metrics(y, p, n_classes)
