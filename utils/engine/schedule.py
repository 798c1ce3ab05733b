"""What each outer epoch trains on, when decisions are taken, and the budget it has used.

Budgets are counted in *rounds*: one round is one pass over every dataset. A joint epoch is one
round; an alternating run needs one epoch per dataset for a round (warm-up epochs are joint, one
round each). ``--rounds`` therefore gives joint and alternating methods the same number of
true-label passes per task and the same number of optimizer steps, whatever ``--epoch`` means for
the seed command lines. Plateau, early stopping and the choice of the best checkpoint look at the
validation value only at the end of a round: mid-round the summed validation loss swings with the
phase of an alternating run (the dataset it last trained on).
"""
from __future__ import annotations

import math


class PlateauControl:
    """Learning-rate plateau and early stopping on the monitored validation value, across epochs."""

    def __init__(self, patience: int, stop_patience: int, mode: str = "min", factor: float = 0.1,
                 min_lr: float = 1e-7):
        self.patience, self.stop_patience, self.mode = patience, stop_patience, mode
        self.factor, self.min_lr = factor, min_lr
        self.best = math.inf if mode == "min" else -math.inf
        self.wait_lr = self.wait_stop = 0

    def improved(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def step(self, value: float, lr: float) -> tuple:
        """Returns ``(is_best, new_lr, stop)`` after an epoch with monitored ``value``."""
        if self.improved(value):
            self.best, self.wait_lr, self.wait_stop = value, 0, 0
            return True, lr, False
        self.wait_lr += 1
        self.wait_stop += 1
        if self.wait_lr >= self.patience and lr > self.min_lr:
            lr, self.wait_lr = max(lr * self.factor, self.min_lr), 0
        return False, lr, self.wait_stop >= self.stop_patience

    def state_dict(self) -> dict:
        return {"best": self.best, "wait_lr": self.wait_lr, "wait_stop": self.wait_stop}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait_lr, self.wait_stop = state["best"], state["wait_lr"], state["wait_stop"]


def cosine_lr(base: float, progress: float) -> float:
    """Cosine annealing to zero (Loshchilov & Hutter 2017, SGDR without restarts); ``progress`` in [0, 1]."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


class Schedule:
    """Phases of a run: ``'joint'`` or the index of the one dataset an epoch trains on."""

    def __init__(self, mode: str, n_datasets: int, warmup_epochs: int, epoch: int, rounds: int | None):
        self.mode, self.n = mode, n_datasets
        self.warmup = warmup_epochs if mode != "stl" else 0
        if rounds is None:
            self.epochs = epoch
        elif mode == "alternating":
            warm = min(self.warmup, rounds)
            self.epochs = warm + (rounds - warm) * n_datasets
        else:
            self.epochs = rounds

    def phase(self, epoch: int):
        if self.mode == "stl":
            return 0
        if self.mode == "joint" or epoch < self.warmup:
            return "joint"
        return (epoch - self.warmup) % self.n

    def round_end(self, epoch: int) -> bool:
        """True after the epoch that completes a round (and after the last epoch)."""
        if self.phase(epoch) == "joint" or self.mode == "stl" or epoch == self.epochs - 1:
            return True
        return (epoch - self.warmup) % self.n == self.n - 1

    def rounds_done(self, epoch: int) -> float:
        """Rounds completed after ``epoch`` (fractional inside an alternating round)."""
        if self.mode != "alternating":
            return float(epoch + 1)
        warm = min(self.warmup, epoch + 1)
        return warm + max(0, epoch + 1 - self.warmup) / self.n


class Budget:
    """Optimizer steps and true-label passes per task, cumulative over the run (equal-budget checks).

    A pass of a task is one sweep over the training rows that carry its true label; joint epochs
    make one pass per task, an alternating epoch one pass for the tasks of its dataset only.
    """

    def __init__(self, tasks: list, batch_size: int):
        self.batch_size = batch_size
        self.counts = {"steps": 0, **{f"passes_{t}": 0 for t in tasks}}

    def add(self, n_rows: int, trained_tables: list) -> dict:
        self.counts["steps"] += math.ceil(n_rows / self.batch_size)
        for key in self.counts:
            if key.startswith("passes_") and any(key[7:] in tb.labels for tb in trained_tables):
                self.counts[key] += 1
        return dict(self.counts)

    def state_dict(self) -> dict:
        return dict(self.counts)

    def load_state_dict(self, state: dict) -> None:
        self.counts = {k: int(state[k]) for k in self.counts}
