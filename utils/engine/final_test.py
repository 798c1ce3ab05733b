"""The end of a run: the best weights on the test rows, ``test_metrics.json`` and test confusion matrices."""
from __future__ import annotations

import logging
import math

from utils.engine.batchnorm import estimate_per_dataset
from utils.engine.config import mae_of_train_mean
from utils.kinds import error_metrics

log = logging.getLogger(__name__)


def test_best_weights(trainer) -> dict:
    """The best weights on every dataset's test rows: test_metrics.json and the test confusion matrices."""
    from models import load_model

    best = trainer.run.path / "best.keras"
    if best.exists():
        trainer.model.set_weights(load_model(best).get_weights())
    if trainer.cfg.mode == "alternating" and trainer.bn and trainer.cfg.bn_stats == "per_dataset" and any(
            trainer.schedule.phase(e) != "joint" for e in range(trainer.schedule.epochs)):
        trainer.bn_dataset = estimate_per_dataset(trainer)
    test = trainer.evaluate("test")
    for t, m in test.items():
        trainer.run.write_confusion(f"test_{t}", m["confusion"], m.get("confusion_names", trainer.class_names[t]),
                                    f"test {t} (best weights)")
    for t, m in test.items():
        if "mae" in m:  # reference point: always predicting the training-set mean (age, angles)
            m["mae_train_mean"] = mae_of_train_mean(trainer.splits, t, "test")
    result = {t: {"acc": m["acc"], "balanced_acc": m["balanced_acc"], "loss": m["loss"], "n": m["n"],
                  "per_class_acc": dict(zip(m.get("confusion_names", trainer.class_names[t]), m["per_class_acc"])),
                  **error_metrics(m)}
              for t, m in test.items()}
    trainer.run.write_json("test_metrics.json", {"run": str(trainer.run.path), "test": result,
                                              "budget": trainer.budget.counts})
    log.info("test (best weights): " + " ".join(
        f"{t}_acc={m['acc']:.4f}" + "".join(f" {t}_{k}={m[k]:.{3 if k == 'cs5' else 2}f}" for k in m
                                            if k.startswith("mae_") and k != "mae_train_mean" or k == "cs5")
        + (f" {t}_mae={m['mae']:.2f} (mae of the train mean: {m['mae_train_mean']:.2f})" if "mae" in m else "")
        for t, m in test.items()))
    for t, m in test.items():
        if "mae" not in m or "mae_yaw" in m:  # classes, or the yaw bins of angles
            names = m.get("confusion_names", trainer.class_names[t])
            log.info("  %s: %s", t, ", ".join(f"{n}={a:.2f}" for n, a in zip(names, m["per_class_acc"])
                                             if not math.isnan(a)))
    return {"run_dir": str(trainer.run.path), "test": result}
