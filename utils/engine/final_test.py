"""The end of a run: the best weights on the test rows, ``test_metrics.json`` and test confusion matrices."""
from __future__ import annotations

import logging
import math

from utils.engine.data import mae_of_train_mean
from utils.kinds import error_metrics

log = logging.getLogger(__name__)


def test_best_weights(run, net, probe, heads: dict, splits: list, per_dataset: bool, budget: dict) -> dict:
    """The best weights on every dataset's test rows: test_metrics.json and the test confusion matrices.

    ``per_dataset``: the run normalised each dataset with its own BatchNorm statistics, so the test does
    too (estimated afresh for the best weights).
    """
    from models import load_model

    best = run.path / "best.keras"
    if best.exists():
        net.set_weights(load_model(best).get_weights())
    probe.use_own_statistics(per_dataset)
    test = probe.evaluate([sp.test for sp in splits], heads)
    names = {t: m.get("confusion_names", list(heads[t].names)) for t, m in test.items()}
    for t, m in test.items():
        if "confusion" in m:  # kinds with classes or bins
            run.write_confusion(f"test_{t}", m["confusion"], names[t], f"test {t} (best weights)")
        if "mae" in m:  # reference point: always predicting the training-set mean (age, angles)
            m["mae_train_mean"] = mae_of_train_mean(splits, t, "test")
    result = {t: {"acc": m["acc"], "balanced_acc": m["balanced_acc"], "loss": m["loss"], "n": m["n"],
                  **({"per_class_acc": dict(zip(names[t], m["per_class_acc"]))} if "per_class_acc" in m else {}),
                  **error_metrics(m)}
              for t, m in test.items()}
    run.write_json("test_metrics.json", {"run": str(run.path), "test": result, "budget": budget})
    log.info("test (best weights): " + " ".join(
        f"{t}_acc={m['acc']:.4f}" + "".join(f" {t}_{k}={m[k]:.{3 if k == 'cs5' else 2}f}" for k in m
                                            if k.startswith("mae_") and k != "mae_train_mean" or k == "cs5")
        + (f" {t}_mae={m['mae']:.2f} (mae of the train mean: {m['mae_train_mean']:.2f})" if "mae" in m else "")
        for t, m in test.items()))
    for t, m in test.items():
        if "per_class_acc" in m and ("mae" not in m or "mae_yaw" in m):  # classes, or the yaw bins of angles
            log.info("  %s: %s", t, ", ".join(f"{n}={a:.2f}" for n, a in zip(names[t], m["per_class_acc"])
                                             if not math.isnan(a)))
    return {"run_dir": str(run.path), "test": result}
