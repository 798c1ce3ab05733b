"""Would logit offsets fitted on validation help a head? Cross-validated on the validation rows alone.

    python benchmarks/head_bias.py --model pretrained/four_tasks_mini_xception_64px/model.keras \
        [--task gender] [--folds 10] [--test]

A temperature cannot change which class wins; offsets added to a head's logits (the bias of vector
scaling, Guo et al., ICML 2017, sec. 4.2, fitted jointly with a temperature by validation NLL:
``utils.calibration.fit_offsets``) can, e.g. when a head favours one class. The offsets are fitted on
k - 1 folds of the validation rows of the dataset that labels the task (its config.json split, test-time
flip as the demos predict) and judged on the held-out fold, against the head as it is and against a
temperature alone. Printed per arm: accuracy, balanced accuracy, the gap between the largest and the
smallest recall, 15-bin ECE and NLL; then the offsets fitted on all validation rows. ``--test`` also
prints those offsets' effect on the test rows: print it once, after deciding on validation.
``models.shift_logits`` bakes offsets into a model's weights (as ``utils/prior_shift.py`` does for a prior).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402


def row(name: str, probs: np.ndarray, labels: np.ndarray) -> str:
    """A markdown row: accuracy, balanced accuracy, recall gap, ECE and NLL of ``probs``."""
    from utils.calibration import ece, nll

    pred = probs.argmax(1)
    recall = [float((pred[labels == c] == c).mean()) for c in np.unique(labels)]
    return (f"| {name} | {np.mean(pred == labels):.4f} | {np.mean(recall):.4f} | {max(recall) - min(recall):.3f} | "
            f"{ece(probs, labels):.4f} | {nll(probs, labels):.4f} |")


def cross_validated(views: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0) -> tuple:
    """Held-out-fold probabilities of a temperature alone and of offsets with a temperature (N, C) each."""
    from sklearn.model_selection import StratifiedKFold

    from utils.calibration import fit_offsets, fit_temperature, offset_scaled, scaled

    temp_only, with_offsets = np.zeros(views.shape[1:]), np.zeros(views.shape[1:])
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels):
        temp_only[held] = scaled(views[:, held].mean(0), fit_temperature(views[:, fit].mean(0), labels[fit]))
        with_offsets[held] = offset_scaled(views[:, held], *fit_offsets(views[:, fit], labels[fit]))
    return temp_only, with_offsets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras or .tflite file with its config.json beside it")
    p.add_argument("--task", default="gender", help="a classification head")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--test", action="store_true", help="also print the test rows (after deciding on validation)")
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    from utils.calibration import fit_offsets, offset_scaled
    from utils.evaluate import labelling_dataset, load_model_and_config, view_predictions
    from utils.kinds import kind_of

    try:
        net, config, _ = load_model_and_config(None, a.model)
        source = labelling_dataset(config, a.task, a.model)
        views, table, _ = view_predictions(net, config, source, "valid", [a.task], a.data_dir, flip=True)
        v, y = views[a.task], table.labels[a.task]
        if kind_of(table.info.vocab[a.task]).name != "classes" or len(np.unique(y)) < 2:
            raise DataError(f"'{a.task}': not a head of classes with two or more of them in {source}'s validation "
                            "rows")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    temp_only, with_offsets = cross_validated(v, y, a.folds)
    header = ["| arm | accuracy | balanced | recall gap | ECE | NLL |", "|---|---:|---:|---:|---:|---:|"]
    print(f"{a.model}: '{a.task}' on {source}'s {len(y)} validation rows, test-time flip, {a.folds}-fold CV\n")
    print("\n".join(header + [row("as it is", v.mean(0), y), row("temperature", temp_only, y),
                              row("offsets + temperature", with_offsets, y)]))
    offsets, temperature = fit_offsets(v, y)
    names = config.get("class_names", {}).get(a.task) or [str(c) for c in range(v.shape[-1])]
    print("\nfitted on all validation rows: offsets " + ", ".join(f"{n} {b:+.4f}" for n, b in zip(names, offsets))
          + f"; temperature {temperature:.4f}")
    if a.test:
        views, table, _ = view_predictions(net, config, source, "test", [a.task], a.data_dir, flip=True)
        v, y = views[a.task], table.labels[a.task]
        print(f"\ntest rows ({len(y)}), the offsets and temperature above\n")
        print("\n".join(header + [row("as it is", v.mean(0), y), row("offsets + temperature",
                                                                      offset_scaled(v, offsets, temperature), y)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
