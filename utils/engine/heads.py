"""A run's task heads: for each task its kind, classes, target width, loss and weight (from the kind,
``utils/kinds.py``, and the flags), and the objectives the training step minimises."""
from __future__ import annotations

from dataclasses import dataclass

from utils.kinds import KINDS, Classes, kind_of
from utils.tasks import flip_permutations


@dataclass(frozen=True)
class Objective:
    """One output the step trains: its key in the model's outputs and targets, loss and base weight."""

    key: str  # "<task>_prediction" (or "<task>_ltn_prediction", LEL-LTN's transfer network)
    kind: Classes
    loss: object
    weight: float
    weighted: bool = True  # a task the weighting strategy weighs (False: auxiliary, at its base weight)


@dataclass(frozen=True)
class Head:
    task: str
    kind: Classes
    names: tuple  # class names (angle names for degrees)
    weight: float  # base loss weight (--E_loss_weights etc.)
    expectation_l1: bool = False  # years trained on the expected value's L1 (--age_loss l1, SSR-Net)

    @property
    def classes(self) -> int:
        return len(self.names)

    @property
    def width(self) -> int:
        """Width of the task's target rows."""
        return self.kind.width(self.classes)

    @property
    def key(self) -> str:
        return f"{self.task}_prediction"

    @property
    def loss(self):
        from utils.losses import loss_for  # Keras: only when a model trains

        return loss_for(self.kind, self.expectation_l1)

    def validation_loss(self, metrics: dict) -> float:
        """The held-out counterpart of the training loss (``metrics`` from ``kind.metrics``)."""
        return metrics["expectation_l1"] if self.expectation_l1 else metrics["loss"]


def make_heads(class_names: dict, loss_weights: dict, age_loss: str, backbone: str) -> dict:
    """task -> Head, in the order of ``class_names``."""
    heads = {}
    for task, names in class_names.items():
        kind = kind_of(names)
        l1 = kind is KINDS["years"] and (backbone == "ssrnet" or age_loss == "l1")
        heads[task] = Head(task, kind, tuple(names), float(loss_weights.get(task, 1.0)), l1)
    return heads


def objectives(heads: dict, transfer: list) -> list:
    """The step's objectives: every head at its weight, and LEL-LTN's transfer outputs (``transfer``: their
    tasks) at weight 1 on true labels only."""
    out = [Objective(h.key, h.kind, h.loss, h.weight) for h in heads.values()]
    out += [Objective(f"{t}_ltn_prediction", heads[t].kind, heads[t].loss, 1.0, weighted=False) for t in transfer]
    return out


def flips(heads: dict, transfer: list) -> dict:
    """How a horizontal flip changes each output's target rows (``utils.tasks.flip_permutations``)."""
    perms = flip_permutations({t: h.names for t, h in heads.items()})
    perms.update({f"{t}_ltn": perms[t] for t in transfer if t in perms})
    return perms
