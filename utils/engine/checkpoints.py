"""Per-epoch checkpoints that a killed run resumes from exactly, and the restore that reads them.

A checkpoint is the network (``checkpoint-NNN.keras``), every optimizer variable and the state of each
part of the run that carries any (``state-NNN.npz``: the learning-rate plateau, the teacher's gate,
the budget, the weighting strategy's own parameters, the per-dataset BatchNorm statistics, the
dropout generators), named by ``state.json``. A part is any object with ``state_dict()`` (a dict of
JSON values or numpy arrays) and ``load_state_dict(dict)``.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from utils.datasets import DataError

log = logging.getLogger(__name__)


def _split(state: dict) -> tuple:
    """(JSON-able values, arrays) of one part's state."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    return {k: v for k, v in state.items() if k not in arrays}, arrays


def save_checkpoint(run, net, optimizer, epoch: int, row: dict, is_best: bool, parts: dict,
                    keep: bool = False) -> None:
    """Persist one finished epoch so that a killed run resumes after it.

    Order: weights, optimizer and part states under epoch-numbered names, the metrics row, then
    ``state.json`` (atomic rename) pointing at them. A crash before the rename leaves the previous
    state intact; older checkpoints are removed only afterwards (their networks stay with ``keep``).
    """
    from utils.run_dir import atomic_link, atomic_save_model, atomic_save_npz

    path = run.path
    ckpt, arrays_file = f"checkpoint-{epoch:03d}.keras", f"state-{epoch:03d}.npz"
    t0 = time.time()
    atomic_save_model(net, path / ckpt)  # serialised once; last/best are links to it
    atomic_link(path / ckpt, path / "last.keras")
    if is_best:
        atomic_link(path / ckpt, path / "best.keras")
    values, arrays = {}, {f"optimizer/{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
    for name, part in parts.items():
        plain, arr = _split(part.state_dict())
        values[name] = plain
        arrays.update({f"{name}/{k}": v for k, v in arr.items()})
    atomic_save_npz(path / arrays_file, arrays)
    row["seconds_checkpoint"] = round(time.time() - t0, 2)
    run.append_metrics(row)
    run.write_json("state.json", {"epoch": epoch, "checkpoint": ckpt, "arrays": arrays_file, "parts": values})
    for old in ([] if keep else list(path.glob("checkpoint-*.keras"))) + list(path.glob("state-*.npz")):
        if old.name not in (ckpt, arrays_file):
            old.unlink()


def restore_checkpoint(run, net, optimizer, parts: dict) -> int:
    """Load the last finished epoch into ``net``, ``optimizer`` and ``parts``; returns that epoch (0-based).

    ``parts`` are restored in their order, before the weights (a part may rebuild the optimizer, as the
    freezing schedule does); the optimizer passed in is then the one in use.
    """
    from models import load_model

    path = run.path
    state_path = path / "state.json"
    if not state_path.exists():
        done = sorted(path.glob("checkpoint-*.keras"))
        why = (f"its first checkpoint ({done[0].name}) was written but the run stopped before recording it"
               if done else "no epoch had finished")
        raise DataError(f"{path}: no state.json; nothing to resume ({why}); start the run again")
    state = json.loads(state_path.read_text())
    if "arrays" not in state:
        raise DataError(f"{path}: written by an older version of this code (no state arrays); start it again")
    with np.load(path / state["arrays"]) as f:
        arrays = {k: f[k] for k in f.files}
    for name, part in parts.items():
        own = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(name + "/")}
        part.load_state_dict({**state["parts"].get(name, {}), **own})
    optimizer = optimizer()  # the optimizer in use after the parts' restore
    saved = load_model(path / state["checkpoint"])
    net.set_weights(saved.get_weights())
    optimizer.build(net.trainable_variables)
    values = [arrays[f"optimizer/{i}"] for i in range(len(optimizer.variables))]
    for var, value in zip(optimizer.variables, values):
        var.assign(value)
    return state["epoch"]


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
