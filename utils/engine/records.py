"""What an epoch leaves behind: its metrics.csv row and its console line."""
from __future__ import annotations

import logging

from utils.kinds import error_metrics

log = logging.getLogger(__name__)


def epoch_row(epoch: int, phase: str, rounds: float, lr: float, frozen: bool, hist: dict, stats: dict,
              monitor: str, value: float, val: dict, budget: dict, weights: dict, penalised: bool,
              weighting: dict) -> dict:
    """One metrics.csv row: training history, teacher statistics, validation metrics per task, the budget
    so far and, when penalties act, what they add to the loss (``weights``: base loss weight per task)."""
    row = {"epoch": epoch + 1, "phase": phase, "rounds": round(rounds, 3), "lr": lr, "frozen": int(bool(frozen)),
           "seconds": 0.0, **{f"train_{k}": float(v[-1]) for k, v in hist.items()}, **stats, monitor: value,
           **budget}
    task_part = sum(w * float(hist[f"{t}_prediction_loss"][-1]) for t, w in weights.items()
                    if f"{t}_prediction_loss" in hist)
    if "loss" in hist and penalised:
        row["train_penalty"] = float(hist["loss"][-1]) - task_part
        row["train_penalty_share"] = row["train_penalty"] / max(float(hist["loss"][-1]), 1e-12)
    row.update({f"weighting_{k}": v for k, v in weighting.items()})
    for t, m in val.items():
        row[f"val_{t}_acc"], row[f"val_{t}_bacc"], row[f"val_{t}_loss"] = m["acc"], m["balanced_acc"], m["loss"]
        row.update({f"val_{t}_{k}": v for k, v in error_metrics(m).items()})
    return row


def log_epoch(epoch: int, epochs: int, phase: str, val: dict, monitor: str, value: float, stats: dict,
              is_best: bool, seconds: float) -> None:
    log.info("epoch %d/%d [%s] %s %s=%.4f%s%s (%.1fs)", epoch + 1, epochs, phase,
             " ".join(f"val_{t}_acc={m['acc']:.4f}" + (f" val_{t}_mae={m['mae']:.2f}" if "mae" in m else "")
                      for t, m in val.items()), monitor, value,
             "".join(f" {k}={v:.3f}" for k, v in stats.items() if isinstance(v, float) and not k.startswith("seconds")),
             " *" if is_best else "", seconds)
