"""Task kinds: every rule that depends on what a task's labels are, in one place.

A task is declared once, by its vocabulary (``utils/tasks.py``); ``kind_of`` names its kind and the
kind says the rest: the width and form of its target rows, its masked loss and training metric
(``utils/losses.py``), its output layer and scale, its held-out metrics, how a teacher's output becomes
a pseudo label with a weight (MTL-SA and the other missing-task strategies never ask which kind they
fill), how pseudo labels are scored against hidden true labels, and how the demos decode a prediction.

* ``classes``: softmax over class names, cross-entropy, accuracy / balanced accuracy / confusion;
* ``years``: 101 one-year bins decoded as the softmax expected value (DEX, Rothe et al. 2018), plus
  MAE, accuracy within 5 years and the confusion over the 8 Adience groups;
* ``degrees``: head-pose angles regressed in degrees (``Regression``): target rows ``[angles..., w]``,
  a masked L1 in units of 30 degrees, MAE per angle, plus the 5-bin yaw accuracy and confusion so that
  it compares with ``classes`` pose.

A new kind is a class here, a line in ``KINDS`` and its vocabulary in ``utils/tasks.py`` (a regression
kind reuses ``Regression``'s rows, loss, head scale and pseudo-label rules). numpy only: the command
line and the converters read it; the engine hands ``regression`` and ``scale`` to the model builder.
"""
from __future__ import annotations

import numpy as np

from utils.targets import degree_rows, onehot
from utils.tasks import AGE_GROUPS8, AGE_VALUE, AGE_YEARS, ANGLE_VOCABS, ANGLES, POSE5, yaw_to_pose, years_to_group


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix over every class (rows = truth), even classes absent from the data."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def expected_value(probs: np.ndarray) -> np.ndarray:
    """Softmax expected value over bins 0..C-1 (the age in years for 101 bins)."""
    probs = np.asarray(probs, np.float64)
    return probs @ np.arange(probs.shape[1]) / probs.sum(1)


def softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """Row-wise, max-subtracted softmax of ``logits / t``."""
    z = np.asarray(logits, np.float64) / float(t)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def global_softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """The reference's softmax over the whole matrix (rows sum to ~1/N). Parity only."""
    z = np.asarray(logits, np.float64) / float(t)
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)


def _per_class(cm: np.ndarray) -> np.ndarray:
    n = cm.shape[0]
    return np.divide(np.diag(cm), cm.sum(1), out=np.full(n, np.nan), where=cm.sum(1) > 0)


def _split_stats(name: str, values: np.ndarray, selected: np.ndarray, known: np.ndarray) -> dict:
    """``oracle_<name>_all / _selected / _rejected``: the mean of ``values`` over the rows with a hidden label."""
    out = {}
    for part, rows in (("all", known), ("selected", selected & known), ("rejected", ~selected & known)):
        out[f"oracle_{name}_{part}"] = float(values[rows].mean()) if rows.any() else float("nan")
    return out


class Classes:
    """A softmax over class names."""

    name = "classes"
    metric = "acc"  # training metric: acc (MaskedAccuracy) | mae (MaskedValueError)
    regression = False  # the head outputs values (a linear layer times ``scale``), not a softmax
    unit = ""  # of the MAE in reports
    mirror_confidence = False  # its teacher's confidence needs the prediction on the mirror image

    # ------------------------------------------------------------------ labels and targets
    def width(self, n_outputs: int) -> int:
        """Width of the target rows for a head with ``n_outputs`` outputs."""
        return n_outputs

    def rows(self, labels: np.ndarray, width: int) -> np.ndarray:
        """A dataset's own labels as target rows: class indices (-1 missing) as one-hot rows."""
        return onehot(labels, width)

    def labelled(self, labels: np.ndarray) -> np.ndarray:
        """Which rows carry a label (class index >= 0)."""
        return labels >= 0

    # ------------------------------------------------------------------ held-out metrics and the demos
    def metrics(self, y: np.ndarray, p: np.ndarray, n_classes: int) -> dict:
        """Held-out metrics of predictions ``p`` (N, C) against labels ``y`` (labelled rows only)."""
        loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))
        pred = p.argmax(axis=1)
        cm = confusion(y, pred, n_classes)
        per_class = _per_class(cm)
        return {"acc": float((pred == y).mean()), "loss": loss, "n": int(len(y)), "confusion": cm,
                "per_class_acc": per_class, "balanced_acc": float(np.nanmean(per_class)),
                "expectation_l1": float(np.abs(expected_value(p) - y).mean())}

    def chance_gap(self, metrics: dict, n_classes: int, mae_of_mean: float | None) -> float:
        """How far validation metrics are above chance (the teacher gate): balanced accuracy - 1/K."""
        return metrics["balanced_acc"] - 1.0 / n_classes

    def skill(self, metrics: dict, n_classes: int, mae_of_mean: float | None) -> float:
        """The metric rescaled to 0 at chance and 1 when perfect (``--monitor val_score``): balanced accuracy
        as ``(bacc - 1/K) / (1 - 1/K)``."""
        return (metrics["balanced_acc"] - 1.0 / n_classes) / (1.0 - 1.0 / n_classes)

    def decode(self, names: list, v: np.ndarray) -> dict:
        """A demo record of one prediction: label, its probability and all probabilities."""
        i = int(np.argmax(v))
        return {"label": names[i], "prob": float(v[i]), "probs": {n: round(float(q), 4) for n, q in zip(names, v)}}

    # ------------------------------------------------------------------ teacher outputs -> pseudo labels
    def values(self, probs: np.ndarray) -> np.ndarray:
        """The teacher's answer per row: the class index."""
        return probs.argmax(axis=1)

    def confidence(self, probs: np.ndarray, mirrored=None, signs=None) -> tuple:
        """``(confidence in [0, 1], answers)``: the top probability (the paper's confidence, sec. 3.2)."""
        return probs.max(axis=1), self.values(probs)

    def confidence_stats(self, confidence: np.ndarray) -> dict:
        """What to log about the confidences (metrics.csv ``pseudo_<task>_*``)."""
        return {}

    def groups(self, values: np.ndarray) -> np.ndarray:
        """The groups inside which local density is measured (sec. 3.2): the pseudo class."""
        return values

    def distilled(self, logits: np.ndarray, probs: np.ndarray, t: float, parity: bool = False) -> np.ndarray:
        """Distilled rows ``softmax(z / T)`` (Hinton et al. 2015)."""
        return (global_softmax if parity else softmax)(logits, t)

    def weighted(self, values: np.ndarray, w: np.ndarray, width: int) -> np.ndarray:
        """Pseudo labels at weight ``w``: ``w * onehot``."""
        return w[:, None].astype(np.float32) * onehot(values, width)

    def blend(self, values: np.ndarray, w: np.ndarray, distilled: np.ndarray) -> np.ndarray:
        """Soft MTL-SA rows ``w onehot + (1 - w) D`` (sec. 3.3)."""
        hot = onehot(values, distilled.shape[1])
        return (w[:, None] * hot + (1.0 - w)[:, None] * distilled).astype(np.float32)

    def rejected(self, values: np.ndarray, w: np.ndarray, distilled: np.ndarray) -> np.ndarray:
        """What a row that hard selection rejects keeps: its distilled labels (sec. 3.3)."""
        return distilled

    def oracle_stats(self, values: np.ndarray, oracle: np.ndarray, selected: np.ndarray) -> dict:
        """Pseudo labels against hidden true labels (``oracle`` -1 = unknown): accuracy of all, selected
        and rejected rows."""
        known = oracle >= 0
        return _split_stats("acc", (values == oracle).astype(np.float64), selected, known) if known.any() else {}


class Years(Classes):
    """Age in years as 101 one-year bins; the prediction is the expected value (DEX)."""

    name = "years"
    unit = "years"
    window = 5  # years: accuracy within +-5 years (cs5), and the mass that makes the teacher's confidence

    def metrics(self, y, p, n_classes):
        out = super().metrics(y, p, n_classes)
        years = expected_value(p)
        out["mae"] = float(np.abs(years - y).mean())
        out["cs5"] = float((np.abs(years - y) <= self.window).mean())
        # a 101 x 101 matrix is unreadable: report it over the 8 Adience groups
        to_group = np.vectorize(years_to_group)
        out["confusion"] = confusion(to_group(y), to_group(np.rint(years).astype(int)), len(AGE_GROUPS8))
        out["confusion_names"] = list(AGE_GROUPS8)
        return out

    def chance_gap(self, metrics, n_classes, mae_of_mean):
        """How much lower the MAE is than predicting the training mean, as a fraction of the latter."""
        return 1.0 - metrics["mae"] / mae_of_mean if mae_of_mean else super().chance_gap(metrics, n_classes, None)

    def skill(self, metrics, n_classes, mae_of_mean):
        """``1 - MAE / MAE of predicting the training mean`` (0 at that chance level, 1 when exact)."""
        return self.chance_gap(metrics, n_classes, mae_of_mean)

    def decode(self, names, v):
        """The expected age (not the most likely bin) and the central 50 % interval of the predicted
        distribution, which the label shows: one year's probability means little."""
        p = np.asarray(v, np.float64) / np.sum(v)
        cdf = np.cumsum(p)
        lo, hi = int(np.searchsorted(cdf, 0.25)), int(np.searchsorted(cdf, 0.75))
        years = float(expected_value(p[None])[0])
        return {"label": f"{lo}-{hi} years", "years": round(years, 1), "range": [lo, hi],
                "probs": {n: round(float(q), 4) for n, q in zip(names, v)}}

    def values(self, probs):
        """The expected age, rounded to a bin (the model's answer, as the demos and metrics read it)."""
        return np.clip(np.rint(expected_value(probs)), 0, probs.shape[1] - 1).astype(np.int64)

    def confidence(self, probs, mirrored=None, signs=None):
        """The probability mass within +-5 years of the expected age: one year's bin holds a few percent
        of the mass even when the teacher is sure of the decade."""
        values = self.values(probs)
        bins = np.arange(probs.shape[1])[None, :]
        near = np.abs(bins - values[:, None]) <= self.window
        return (probs * near).sum(1) / probs.sum(1), values

    def groups(self, values):
        return np.array([years_to_group(v) for v in values], np.int64)

    def oracle_stats(self, values, oracle, selected):
        """Absolute error in years of the pseudo ages, all / selected / rejected rows."""
        known = oracle >= 0
        return _split_stats("mae", np.abs(values - oracle).astype(np.float64), selected, known) if known.any() else {}


class Regression(Classes):
    """Values regressed directly; target rows ``[values..., w]`` (``utils/targets.py``), a masked L1 in
    units of ``scale``, a linear head scaled by ``scale`` (unit-scale outputs train like logits)."""

    name = "regression"
    metric = "mae"
    regression = True
    scale = 1.0  # one unit of the loss and of the head's raw output

    def width(self, n_outputs):
        return n_outputs + 1  # the values and the row's weight

    def rows(self, labels, width):
        return degree_rows(labels)  # (N, k) values, NaN missing -> [values..., w]

    def labelled(self, labels):
        return ~np.isnan(labels).any(axis=1)

    def metrics(self, y, p, n_classes):
        err = np.abs(p - y)
        return {"mae": float(err.mean()), "loss": float(err.mean() / self.scale), "n": int(len(y)),
                "acc": float("nan"), "balanced_acc": float("nan")}

    def chance_gap(self, metrics, n_classes, mae_of_mean):
        return 1.0 - metrics["mae"] / mae_of_mean if mae_of_mean else 0.0

    def skill(self, metrics, n_classes, mae_of_mean):
        return self.chance_gap(metrics, n_classes, mae_of_mean)

    def decode(self, names, v):
        vals = {a: round(float(x), 1) for a, x in zip(names, v)}
        return {"values": vals, "label": ", ".join(f"{a} {x:+.0f}" for a, x in vals.items())}

    def values(self, probs):
        return np.asarray(probs, np.float32)

    def confidence(self, probs, mirrored=None, signs=None):
        """No probability exists: every row is as confident (1)."""
        values = self.values(probs)
        return np.ones(len(values)), values

    def groups(self, values):
        return np.zeros(len(values), np.int64)

    def distilled(self, logits, probs, t, parity=False):
        return degree_rows(self.values(probs))  # the distilled form of a value is the value itself

    def weighted(self, values, w, width):
        return degree_rows(values, w)

    def blend(self, values, w, distilled):
        return degree_rows(values, w)

    def rejected(self, values, w, distilled):
        return degree_rows(values, w)  # rejected rows keep the value at their own weight

    def oracle_stats(self, values, oracle, selected):
        return {}


class Degrees(Regression):
    """Head-pose angles in degrees; a flip negates yaw and roll."""

    name = "degrees"
    unit = "degrees"
    scale = 30.0  # a 15-degree error costs 0.5, about what a cross-entropy does
    mirror_confidence = True
    agreement = 10.0  # degrees: confidence exp(-disagreement / 10) with the mirror image

    def metrics(self, y, p, n_classes):
        """MAE per angle and over the angles (``loss``: the training loss, MAE in 30-degree units);
        ``acc`` and the confusion over the 5 yaw bins of the regressed yaw."""
        out = super().metrics(y, p, n_classes)
        out.update({f"mae_{a}": float(e) for a, e in zip(ANGLES, np.abs(p - y).mean(0))})
        truth, pred = np.vectorize(yaw_to_pose)(y[:, 0]), np.vectorize(yaw_to_pose)(p[:, 0])
        cm = confusion(truth, pred, len(POSE5))
        per_class = _per_class(cm)
        out.update({"acc": float((truth == pred).mean()), "balanced_acc": float(np.nanmean(per_class)),
                    "per_class_acc": per_class, "confusion": cm, "confusion_names": list(POSE5)})
        return out

    def chance_gap(self, metrics, n_classes, mae_of_mean):
        return metrics["balanced_acc"] - 1.0 / len(POSE5)

    def skill(self, metrics, n_classes, mae_of_mean):
        return Classes.skill(self, metrics, len(POSE5), mae_of_mean)

    def decode(self, names, v):
        deg = {a: round(float(x), 1) for a, x in zip(names, v)}
        return {"degrees": deg, "label": ", ".join(f"{a} {x:+.0f}" for a, x in deg.items())}

    def confidence(self, probs, mirrored=None, signs=None):
        """The teacher's agreement with itself on the mirror image, ``exp(-mean |a(x) - s a(flip x)| /
        10 degrees)`` (``s``: the flip signs); the answer is the mean of the two readings."""
        values = self.values(probs)
        if mirrored is None:
            return super().confidence(probs)
        corrected = np.asarray(mirrored, np.float32) * (1.0 if signs is None else np.asarray(signs, np.float32))
        gap = np.abs(values - corrected).mean(1)
        return np.exp(-gap / self.agreement), 0.5 * (values + corrected)

    def confidence_stats(self, confidence):
        """The mean disagreement with the mirror image, in degrees."""
        return {"mirror_gap_degrees": float(np.mean(-self.agreement * np.log(np.maximum(confidence, 1e-30))))}

    def groups(self, values):
        return np.array([yaw_to_pose(v) for v in values[:, 0]], np.int64)  # density within the yaw bin


class AgeValue(Regression):
    """Age in years regressed directly by one linear output (``--age_kind value``), trained with an L1 in
    units of 10 years."""

    name = "age_value"
    unit = "years"
    scale = 10.0

    def decode(self, names, v):
        return {"years": float(v[0]), "label": f"{float(v[0]):.0f} years"}


KINDS = {k.name: k for k in (Classes(), Years(), Degrees(), AgeValue())}


def error_metrics(metrics: dict) -> dict:
    """The MAE-type entries of a task's metrics (``mae``, ``mae_<angle>``, ``cs5``), for logs and files."""
    return {k: v for k, v in metrics.items() if k.startswith("mae") or k == "cs5"}


def kind_of(vocab) -> Classes:
    """The kind of a task from its vocabulary: angles -> degrees, the 101 one-year bins -> years, one
    regressed age -> age_value."""
    vocab = tuple(vocab)
    if vocab in ANGLE_VOCABS:
        return KINDS["degrees"]
    if vocab == AGE_VALUE:
        return KINDS["age_value"]
    return KINDS["years"] if vocab == AGE_YEARS else KINDS["classes"]
