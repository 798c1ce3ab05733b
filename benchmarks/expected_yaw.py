"""How many degrees off is a 5-bin pose head, read as its bin or as its expected yaw?

    python benchmarks/expected_yaw.py --model pretrained/four_tasks_mini_xception_64px/model.keras [--test]

A bin head's argmax is the answer for bin accuracy; for a reading in degrees (the demos' arrow) the
posterior mean of the yaw, ``sum_k p_k c_k``, minimises the squared error, as the age head's expected
value does for years (Rothe et al., DEX). ``c_k`` is the mean pan of the Pointing'04 training rows in
bin k (the model's reproduced split). On Pointing'04's validation rows (``--test``: also its held-out
persons; print those after deciding on validation), with test-time flip and the stored temperature:
MAE in degrees against the true pan of the argmax bin's centre and of the expected yaw, and the 5-bin
accuracy of each reading (the expected yaw binned by ``utils.tasks.yaw_to_pose``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402


def rows(net, config: dict, centres: np.ndarray, splits, data_dir) -> list:
    """One markdown row per Pointing'04 part: the two readings' MAE in degrees and 5-bin accuracy."""
    from utils.calibration import scaled
    from utils.evaluate import predictions
    from utils.model_card import column_of
    from utils.tasks import yaw_to_pose

    out = []
    for split in splits:
        preds, table, _ = predictions(net, config, "pointing04", split, ["pose"], data_dir, flip=True)
        probs = scaled(preds["pose"], config.get("temperatures", {}).get("pose", 1.0))
        truth, label = column_of(table, "pan").astype(float), table.labels["pose"]
        expected, top = probs @ centres, probs.argmax(1)
        binned = np.array([yaw_to_pose(e) for e in expected])
        out.append(f"| {split} | {len(label)} | {np.abs(centres[top] - truth).mean():.2f} | "
                   f"{np.abs(expected - truth).mean():.2f} | {np.mean(top == label):.4f} | "
                   f"{np.mean(binned == label):.4f} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras or .tflite file with its config.json beside it")
    p.add_argument("--test", action="store_true", help="also the held-out persons (after deciding on validation)")
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    from utils.evaluate import head_widths, load_model_and_config, select_rows
    from utils.model_card import column_of

    try:
        net, config, _ = load_model_and_config(None, a.model)
        if head_widths(net).get("pose") != 5:
            raise DataError(f"{a.model}: no 5-bin pose head")
        train, _, _ = select_rows(head_widths(net), config, "pointing04", "train", ["pose"], a.data_dir)
        pan, label = column_of(train, "pan").astype(float), train.labels["pose"]
        centres = np.array([pan[label == k].mean() for k in range(5)])
        table = rows(net, config, centres, ("valid", "test") if a.test else ("valid",), a.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{a.model}: bin centres (mean training pan) " + ", ".join(f"{c:+.1f}" for c in centres) + " degrees")
    print("| part | n | MAE, argmax bin's centre | MAE, expected yaw | accuracy, argmax | "
          "accuracy, expected yaw binned |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
