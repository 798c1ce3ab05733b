"""The interface of a missing-task strategy: how the rows of a task a dataset does not label are filled.

A strategy is one class in one module of ``utils/missing/`` plus one line in
``utils.registries.MISSING_TASKS``. It declares its own command-line flags (``flags``), says which
teacher outputs it needs (``needs``) and turns them into target rows (``fill``); the engine's teacher
(``utils/engine/teacher.py``) runs the forward passes and never branches on the strategy. Strategies
are numpy code: the command line reads their flags without importing TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Flag:
    """A command-line flag of a strategy. ``default=None``: the ``PseudoConfig`` field's default (the one
    place defaults live); a flag without such a field keeps its value in ``PseudoConfig.options``."""

    name: str
    type: type
    help: str
    default: object = None
    field: str | None = None  # the PseudoConfig field when it is not ``name``


@dataclass
class FillInputs:
    """What the teacher computed for one task over the rows that lack it (``U``) and, when asked for,
    a labelled sample (``L``)."""

    task: str
    kind: object  # the task's kind (utils.kinds): how answers, weights and target rows are formed
    n_classes: int  # head outputs (angles for degrees)
    logits: np.ndarray  # (N_U, C) the head's pre-activation output
    probs: np.ndarray  # (N_U, C) the head's prediction (angles in degrees for degrees)
    features: np.ndarray | None = None  # (N_U, D) when "features" is needed
    labelled_features: np.ndarray | None = None  # (N_L, D) when "labelled" is needed
    labelled_labels: np.ndarray | None = None  # (N_L,) class labels of the labelled sample
    mirrored: np.ndarray | None = None  # (N_U, C) prediction on the mirror images, when "mirror" is needed
    transferred: np.ndarray | None = None  # (N_U, C) the LEL-LTN head's labels, when "label_transfer"
    flip_signs: tuple = ()  # degrees: how a mirror image changes each angle
    oracle: np.ndarray | None = None  # hidden true labels of synthetic data (statistics only)


class MissingTaskStrategy:
    """Base class: no targets for the missing task (subclasses override)."""

    name = "naive"
    flags: tuple = ()  # Flag(...) the strategy reads from PseudoConfig
    model_needs_label_embedding = False  # LEL-LTN: the network carries label embedding and transfer heads
    labelled_rows = 2048  # labelled rows per dataset that the teacher forwards when "labelled" is needed

    def __init__(self, pseudo):
        self.p = pseudo  # PseudoConfig: the strategy's flags and the seed

    def needs(self, kinds: set) -> set:
        """Teacher outputs this strategy reads, of: features, labelled, mirror, label_transfer. An empty set
        with ``uses_teacher`` False means no teacher pass at all. ``kinds``: the kind objects of the filled
        tasks (``utils/kinds.py``)."""
        return set()

    @property
    def uses_teacher(self) -> bool:
        return True

    def fill(self, x: FillInputs):
        """Target rows for the task's missing rows (a ``utils.pseudo_labels.PseudoResult``), or None."""
        return None

    def label(self, mode: str) -> str:
        """The method's name in run folders and the report (``mode``: joint | alternating)."""
        raise NotImplementedError
