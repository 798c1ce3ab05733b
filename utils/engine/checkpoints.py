"""Per-epoch checkpoints that a killed run resumes from, and the restore that reads them."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from utils.datasets import DataError

log = logging.getLogger(__name__)


def save_checkpoint(trainer, epoch: int, row: dict, is_best: bool, stop: bool) -> None:
    """Persist one finished epoch so that a killed run resumes after it.

    Order: weights + optimizer state under epoch-numbered names, the metrics row, then
    ``state.json`` (atomic rename) pointing at them. A crash before the rename leaves the
    previous state intact; older checkpoints are removed only afterwards.
    """
    from utils.run_dir import atomic_link, atomic_save_model, atomic_save_npz

    run, model = trainer.run, trainer.model
    path = run.path
    ckpt, opt = f"checkpoint-{epoch:03d}.keras", f"optimizer-{epoch:03d}.npz"
    t0 = time.time()
    atomic_save_model(model, path / ckpt)  # serialised once; last/best are links to it
    atomic_link(path / ckpt, path / "last.keras")
    if is_best:
        atomic_link(path / ckpt, path / "best.keras")
    atomic_save_npz(path / opt, [np.asarray(v) for v in model.optimizer.variables])
    row["seconds_checkpoint"] = round(time.time() - t0, 2)
    run.append_metrics(row)
    run.write_json("state.json", {
        "epoch": epoch, "checkpoint": ckpt, "optimizer": opt, "lr": trainer.lr, "frozen": bool(trainer.frozen),
        "stopped": bool(stop), "plateau": vars(trainer.plateau), "teacher_passed": trainer.teacher.passed})
    for old in list(path.glob("checkpoint-*.keras")) + list(path.glob("optimizer-*.npz")):
        if old.name not in (ckpt, opt):
            old.unlink()


def restore_checkpoint(trainer) -> int:
    """Load the state of the last finished epoch into ``trainer``; returns the epoch to continue with."""
    from models import load_model

    path = trainer.run.path
    state_path = path / "state.json"
    if not state_path.exists():
        raise DataError(f"{path}: no state.json; nothing to resume (did the first epoch finish?)")
    state = json.loads(state_path.read_text())
    trainer.frozen = None
    trainer.set_frozen(state["frozen"])
    saved = load_model(path / state["checkpoint"])
    model = trainer.model
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    with np.load(path / state["optimizer"]) as opt:
        values = [opt[f"arr_{i}"] for i in range(len(opt.files))]
    for var, value in zip(model.optimizer.variables, values):
        var.assign(value)
    trainer.lr = state["lr"]
    model.optimizer.learning_rate.assign(trainer.lr)
    trainer.plateau.__dict__.update(state["plateau"])
    trainer.teacher.passed = dict(state.get("teacher_passed", {}))
    trainer.run.truncate_metrics(state["epoch"] + 1)
    trainer.budget.restore(trainer.run.last_metrics())
    log.info("resumed after epoch %d (learning rate %.2e)", state["epoch"] + 1, trainer.lr)
    if trainer.cfg.weighting != "fixed":  # not saved in checkpoints yet
        log.warning("--weighting=%s starts its own weights afresh after a resume", trainer.cfg.weighting)
    return 10**9 if state.get("stopped") else state["epoch"] + 1  # an early-stopped run has nothing left


def check_finite(history: dict, epoch: int, phase: str, run_path: Path) -> None:
    """Stop on a NaN/inf loss, naming the epoch and the task; last.keras keeps the last good weights."""
    bad = [k for k, v in history.items() if v and not math.isfinite(float(v[-1]))]
    if bad:
        tasks = sorted(k.removesuffix("_prediction_loss") for k in bad if k.endswith("_prediction_loss"))
        what = f"{', '.join(tasks)} loss" if tasks else ", ".join(bad)
        last = run_path / "last.keras"
        where = (f"the last good weights are in {last}" if last.exists()
                 else "no epoch had finished, so no weights were saved")
        raise FloatingPointError(f"epoch {epoch + 1} ({phase}): non-finite {what}; stopped; {where}")
