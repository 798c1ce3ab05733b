"""Task kinds: what a task's vocabulary implies for its targets, loss, metrics and demo output.

A task is declared once, by its vocabulary (``utils/tasks.py``); ``kind_of`` names its kind and the
kind says the rest: the width of its target rows (their form: ``utils/targets.py``), the masked loss and training metric
(``utils/losses.py``), whether its head regresses values (``models/net.py``), its held-out metrics and
how the demos decode a prediction. The three kinds:

* ``classes``: softmax over class names, cross-entropy, accuracy / balanced accuracy / confusion;
* ``years``: 101 one-year bins decoded as the softmax expected value (DEX, Rothe et al. 2018), plus
  MAE, accuracy within 5 years and the confusion over the 8 Adience groups;
* ``degrees``: head-pose angles regressed in degrees, target rows ``[angles..., w]``, a masked L1, MAE
  per angle, plus the 5-bin yaw accuracy and confusion so that it compares with ``classes`` pose.

A new kind is a class here and a line in ``KINDS``, its vocabularies in ``utils/tasks.py``, its loss in
``utils/losses.py`` and, for a new kind of output, its head in ``models/net.py``; a new form of labels
(e.g. multi-label rows) also needs its reader in ``utils/datasets.py`` and its rows in ``utils/targets.py``.
numpy only: the command line and the converters read it.
"""
from __future__ import annotations

import numpy as np

from utils.targets import DEGREE_UNIT, degree_rows, onehot
from utils.tasks import AGE_GROUPS8, AGE_YEARS, ANGLE_VOCABS, ANGLES, POSE5, yaw_to_pose, years_to_group


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix over every class (rows = truth), even classes absent from the data."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def expected_value(probs: np.ndarray) -> np.ndarray:
    """Softmax expected value over bins 0..C-1 (the age in years for 101 bins)."""
    probs = np.asarray(probs, np.float64)
    return probs @ np.arange(probs.shape[1]) / probs.sum(1)


def _per_class(cm: np.ndarray) -> np.ndarray:
    n = cm.shape[0]
    return np.divide(np.diag(cm), cm.sum(1), out=np.full(n, np.nan), where=cm.sum(1) > 0)


class Classes:
    """A softmax over class names."""

    name = "classes"
    loss = "ce"  # utils.losses.LOSSES key
    metric = "acc"  # training metric: acc (MaskedAccuracy) | mae (MaskedAngleError)
    regression = False  # the head outputs values (a linear layer), not a softmax
    unit = ""  # of the MAE in reports

    def width(self, n_outputs: int) -> int:
        """Width of the target rows for a head with ``n_outputs`` outputs."""
        return n_outputs

    def rows(self, labels: np.ndarray, width: int) -> np.ndarray:
        """A dataset's own labels as target rows: class indices (-1 missing) as one-hot rows."""
        return onehot(labels, width)

    def labelled(self, labels: np.ndarray) -> np.ndarray:
        """Which rows carry a label (class index >= 0)."""
        return labels >= 0

    def metrics(self, y: np.ndarray, p: np.ndarray, n_classes: int) -> dict:
        """Held-out metrics of predictions ``p`` (N, C) against labels ``y`` (labelled rows only)."""
        loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))
        pred = p.argmax(axis=1)
        cm = confusion(y, pred, n_classes)
        per_class = _per_class(cm)
        return {"acc": float((pred == y).mean()), "loss": loss, "n": int(len(y)), "confusion": cm,
                "per_class_acc": per_class, "balanced_acc": float(np.nanmean(per_class)),
                "expectation_l1": float(np.abs(expected_value(p) - y).mean())}

    def decode(self, names: list, v: np.ndarray) -> dict:
        """A demo record of one prediction: label, its probability and all probabilities."""
        i = int(np.argmax(v))
        return {"label": names[i], "prob": float(v[i]), "probs": {n: round(float(q), 4) for n, q in zip(names, v)}}


class Years(Classes):
    """Age in years as 101 one-year bins; the prediction is the expected value (DEX)."""

    name = "years"
    unit = "years"

    def metrics(self, y, p, n_classes):
        out = super().metrics(y, p, n_classes)
        years = expected_value(p)
        out["mae"] = float(np.abs(years - y).mean())
        out["cs5"] = float((np.abs(years - y) <= 5).mean())
        # a 101 x 101 matrix is unreadable: report it over the 8 Adience groups
        to_group = np.vectorize(years_to_group)
        out["confusion"] = confusion(to_group(y), to_group(np.rint(years).astype(int)), len(AGE_GROUPS8))
        out["confusion_names"] = list(AGE_GROUPS8)
        return out

    def decode(self, names, v):
        rec = super().decode(names, v)
        rec["years"] = float(expected_value(v[None])[0])  # the expected value, not the most likely bin
        rec["label"] = f"{rec['years']:.0f} years"
        return rec


class Degrees(Classes):
    """Head-pose angles regressed in degrees (target rows ``[angles..., w]``, ``utils/targets.py``)."""

    name = "degrees"
    loss = "degrees"
    metric = "mae"
    regression = True
    unit = "degrees"

    def width(self, n_outputs):
        return n_outputs + 1  # the angles and the row's weight

    def rows(self, labels, width):
        return degree_rows(labels)  # (N, k) angles, NaN missing -> [angles..., w]

    def labelled(self, labels):
        return ~np.isnan(labels).any(axis=1)

    def metrics(self, y, p, n_classes):
        """MAE per angle and over the angles (``loss``: the training loss, MAE in 30-degree units);
        ``acc`` and the confusion over the 5 yaw bins of the regressed yaw."""
        err = np.abs(p - y)
        truth, pred = np.vectorize(yaw_to_pose)(y[:, 0]), np.vectorize(yaw_to_pose)(p[:, 0])
        cm = confusion(truth, pred, len(POSE5))
        per_class = _per_class(cm)
        return {"mae": float(err.mean()), **{f"mae_{a}": float(e) for a, e in zip(ANGLES, err.mean(0))},
                "loss": float(err.mean() / DEGREE_UNIT), "n": int(len(y)), "acc": float((truth == pred).mean()),
                "balanced_acc": float(np.nanmean(per_class)), "per_class_acc": per_class, "confusion": cm,
                "confusion_names": list(POSE5)}

    def decode(self, names, v):
        deg = {a: round(float(x), 1) for a, x in zip(names, v)}
        return {"degrees": deg, "label": ", ".join(f"{a} {x:+.0f}" for a, x in deg.items())}


KINDS = {k.name: k for k in (Classes(), Years(), Degrees())}


def error_metrics(metrics: dict) -> dict:
    """The MAE-type entries of a task's metrics (``mae``, ``mae_<angle>``, ``cs5``), for logs and files."""
    return {k: v for k, v in metrics.items() if k.startswith("mae") or k == "cs5"}


def kind_of(vocab) -> Classes:
    """The kind of a task from its vocabulary: angles -> degrees, the 101 one-year bins -> years."""
    vocab = tuple(vocab)
    if vocab in ANGLE_VOCABS:
        return KINDS["degrees"]
    return KINDS["years"] if vocab == AGE_YEARS else KINDS["classes"]
