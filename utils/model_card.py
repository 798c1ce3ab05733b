"""The numbers of a four-task model's card: held-out results, fairness across groups, calibration.

    python utils/model_card.py --model pretrained/four_tasks_mini_xception_64px/model.keras [--write_temperatures]

Every number comes from ``utils/evaluate.py``'s predictions on the split the model was trained with
(its config.json): FER2013's test part (emotion: accuracy, balanced accuracy, recall per class),
UTKFace's test part (gender accuracy and age MAE overall, per race, per gender and per age band, with
counts and the worst-group gap; per race also at the whole part's age mix, with bootstrap intervals),
Pointing'04's held-out persons (5-bin yaw accuracy per person, mean and spread). Calibration: a
temperature per task (emotion, gender, pose) fitted on the datasets' validation rows
(``utils/calibration.py``), and the 15-bin ECE on the test rows before and after it;
``--write_temperatures`` stores them in the model's config.json, where the demos read them. ``--flip``
averages each prediction over the model's test-time views, as the demos do (the mirror image, and the
arms its config.json names per head: ``utils/views.py``); ``--plot`` draws the test rows' reliability diagram.
Prints markdown.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402

BANDS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))
NEAR_09 = int(0.9 * 15)  # the 15-bin ECE scale's bin that holds the answers printed as 0.9
SOURCES = {"emotion": "fer2013", "gender": "utkface", "pose": "pointing04"}  # where each temperature is fitted


def group_table(title: str, groups: dict, metric, fmt: str) -> list:
    """Rows: group, count, metric; the last row names the worst-group gap."""
    rows = [f"| {title} | n | value |", "|---|---:|---:|"]
    values = {}
    for name, idx in groups.items():
        if len(idx):
            values[name] = metric(idx)
            rows.append(f"| {name} | {len(idx)} | {values[name]:{fmt}} |")
    if values:
        best, worst = max(values.values()), min(values.values())
        rows.append(f"| gap (largest - smallest) | | {best - worst:{fmt}} |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras model with its run's config.json beside it")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--flip", action="store_true",
                   help="test-time views as the demos predict: the mirror image (and config.json's test_views)")
    p.add_argument("--write_temperatures", action="store_true", help="store the fitted temperatures in config.json")
    p.add_argument("--plot", default=None, help="write a reliability diagram of the test rows to this .png")
    a = p.parse_args(argv)
    if a.plot and not writable_png(Path(a.plot)):
        print(f"error: --plot {a.plot}: not a .png file that can be written", file=sys.stderr)
        return 1
    from models import import_tensorflow_quietly
    from utils.logs import setup_logging

    setup_logging()
    import_tensorflow_quietly()
    from utils.calibration import ece, fit_temperature, reliability, scaled
    from utils.evaluate import load_model_and_config, predictions

    try:
        net, config, path = load_model_and_config(None, a.model)
        names = config["class_names"]
        out, temps = [f"Model: `{a.model}`" + (" (test-time flip)" if a.flip else ""), ""], {}
        test = {}
        for task, dataset in SOURCES.items():
            if task not in names:
                continue
            valid, vt, _ = predictions(net, config, dataset, "valid", [task], a.data_dir, flip=a.flip)
            temps[task] = fit_temperature(valid[task], vt.labels[task])
            test[task] = predictions(net, config, dataset, "test", [task] + (["age"] if task == "gender" else []),
                                     a.data_dir, flip=a.flip)
        out += ["## Calibration (15-bin ECE on the test rows)", "",
                "| task | temperature (fitted on validation) | ECE before | ECE after | said "
                f"{NEAR_09 / 15:.2f}-{(NEAR_09 + 1) / 15:.2f} after: right (n) |", "|---|---:|---:|---:|---:|"]
        for task, (preds, table, _) in test.items():
            y, after = table.labels[task], scaled(preds[task], temps[task])
            _, acc, count = reliability(after, y, 15)
            out.append(f"| {task} | {temps[task]:.2f} | {ece(preds[task], y):.3f} | {ece(after, y):.3f} | "
                       f"{acc[NEAR_09]:.2f} ({count[NEAR_09]}) |")
        if "emotion" in test:
            preds, table, _ = test["emotion"]
            y, pred = table.labels["emotion"], preds["emotion"].argmax(1)
            recall = {n: float((pred[y == i] == i).mean()) for i, n in enumerate(names["emotion"]) if (y == i).any()}
            out += ["", "## Emotion (FER2013 test part)", "",
                    f"accuracy {np.mean(pred == y):.3f}, balanced accuracy {np.mean(list(recall.values())):.3f}, "
                    f"n = {len(y)}", "", "| class | n | recall |", "|---|---:|---:|"]
            out += [f"| {n} | {int((y == i).sum())} | {recall[n]:.3f} |" for i, n in enumerate(names["emotion"])
                    if n in recall]
        if "gender" in test:
            out += fairness(test["gender"], names)
        if "pose" in test:
            out += per_person(test["pose"])
        print("\n".join(out))
        if a.plot:
            try:
                reliability_png(Path(a.plot), {t: (preds[t], table.labels[t]) for t, (preds, table, _) in test.items()},
                                temps)
            except OSError as exc:
                raise DataError(f"--plot {a.plot}: {exc.strerror or exc}") from None
            print(f"\nreliability diagram written to {a.plot}")
        if a.write_temperatures:
            cfg_path = Path(path).with_name("config.json")
            data = json.loads(cfg_path.read_text())
            data["temperatures"] = {t: round(v, 4) for t, v in temps.items()}
            cfg_path.write_text(json.dumps(data, indent=2) + "\n")
            print(f"\ntemperatures written to {cfg_path}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def writable_png(path: Path) -> bool:
    """Whether ``path`` names a .png whose folder exists or can be made, and can be written to."""
    import os

    if path.suffix.lower() != ".png" or path.is_dir():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def reliability_png(path: Path, results: dict, temperatures: dict, bins: int = 15) -> None:
    """One panel per task: accuracy against mean confidence in each confidence bin, before and after the
    task's temperature, over the diagonal of perfect calibration; marker area ~ the bin's share of rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.calibration import ece, reliability, scaled

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.8), squeeze=False)
    for ax, (task, (probs, labels)) in zip(axes[0], results.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        arms = (("before", probs, "0.55"), (f"T = {temperatures[task]:.2f}", scaled(probs, temperatures[task]), "C0"))
        for name, p, colour in arms:
            conf, acc, count = reliability(p, labels, bins)
            have = count > 0
            ax.plot(conf[have], acc[have], color=colour, lw=1.2, marker="o", ms=3,
                    label=f"{name}: ECE {ece(p, labels, bins):.3f}")
            ax.scatter(conf[have], acc[have], s=400 * count[have] / count.sum() + 6, color=colour, zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class)", aspect="equal",
               title=f"{task} (n = {len(labels)})")
        ax.legend(loc="upper left", fontsize=8)
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def column_of(table, column: str) -> np.ndarray:
    """``column`` of the table's CSV for each of its rows (``table.rows`` are their CSV row numbers)."""
    import pandas as pd

    frame = pd.read_csv(table.csv_path)
    if column not in frame.columns:
        raise DataError(f"{table.csv_path}: missing column '{column}'")
    return frame[column].to_numpy()[table.rows]


def per_person(result) -> list:
    """5-bin yaw accuracy on Pointing'04's test persons: overall, and per person with mean, sd (ddof 1) and range."""
    preds, table, _ = result
    y, pred = table.labels["pose"], preds["pose"].argmax(1)
    person = column_of(table, "subject")
    accs = {q: float((pred[person == q] == y[person == q]).mean()) for q in sorted(set(person))}
    spread = f", sd {np.std(list(accs.values()), ddof=1):.3f}" if len(accs) > 1 else ""
    return ["", "## Head pose (Pointing'04, persons not used for training)", "",
            f"5-bin yaw accuracy {np.mean(pred == y):.3f} over {len(accs)} persons (n = {len(y)}); per person "
            f"mean {np.mean(list(accs.values())):.3f}{spread}, min {min(accs.values()):.3f}, "
            f"max {max(accs.values()):.3f}", "", "| person | n | accuracy |", "|---|---:|---:|",
            *[f"| {q} | {int((person == q).sum())} | {v:.3f} |" for q, v in accs.items()]]


def fairness(result, names: dict) -> list:
    """Gender accuracy and age MAE per race, gender and age band on UTKFace's test rows (race from its CSV)."""
    from utils.kinds import expected_value
    from utils.tasks import RACE5

    preds, table, _ = result
    races = column_of(table, "race")
    gender, age = table.labels["gender"], table.labels["age"]
    g_hit = preds["gender"].argmax(1) == gender
    age_err = np.abs(expected_value(preds["age"]) - age) if "age" in preds else None
    groups = {"race": {RACE5[r]: np.flatnonzero(races == r) for r in range(5)},
              "gender": {n: np.flatnonzero(gender == i) for i, n in enumerate(names["gender"])},
              "age band": {f"{lo}-{hi}" if hi < 200 else f"{lo}+": np.flatnonzero((age >= lo) & (age <= hi))
                           for lo, hi in BANDS}}
    out = ["", "## Gender and age across groups (UTKFace test part)", "",
           f"gender accuracy {g_hit.mean():.3f}" + (f", age MAE {age_err.mean():.2f} years" if age_err is not None
                                                    else "") + f", n = {len(gender)}", ""]
    for by, g in groups.items():
        out += group_table(f"gender accuracy by {by}", g, lambda idx: g_hit[idx].mean(), ".3f") + [""]
        if age_err is not None:
            out += group_table(f"age MAE (years) by {by}", g, lambda idx: age_err[idx].mean(), ".2f") + [""]
    band = np.select([(age >= lo) & (age <= hi) for lo, hi in BANDS], np.arange(len(BANDS)), -1)
    metrics = {"gender accuracy": (g_hit.astype(np.float64), ".3f")}
    if age_err is not None:
        metrics["age MAE (years)"] = (age_err, ".2f")
    return out + standardised_table(groups["race"], band, metrics)


def age_standardised(values: np.ndarray, band: np.ndarray, weights: np.ndarray) -> float:
    """The mean of ``values`` with each age band weighted by ``weights`` instead of its share of the rows
    (direct standardisation); bands without rows are left out and the other weights rescaled."""
    present = [b for b in range(len(weights)) if (band == b).any()]
    return float(sum(weights[b] * values[band == b].mean() for b in present) / weights[present].sum())


def standardised_table(groups: dict, band: np.ndarray, metrics: dict, draws: int = 1000, seed: int = 0) -> list:
    """Per group, each metric at the whole part's age-band mix, with a 95 % bootstrap interval (rows drawn
    again within each band of the group), and the gap between the largest and the smallest group with the
    interval of their difference. Tells a group's own difficulty apart from its age composition: gender
    is far harder to read on children, and the groups hold different shares of them."""
    weights = np.bincount(band[band >= 0], minlength=len(BANDS)) / max((band >= 0).sum(), 1)
    rng = np.random.default_rng(seed)
    point, boot, sizes = {}, {}, {}
    for name, idx in groups.items():
        idx = idx[band[idx] >= 0]
        if not len(idx):
            continue
        b = band[idx]
        sizes[name] = (len(idx), np.mean(b == 0))  # rows, share of children
        for metric, (values, _) in metrics.items():
            v = values[idx]
            point[name, metric] = age_standardised(v, b, weights)
            boot[name, metric] = np.array([age_standardised(np.concatenate(
                [rng.choice(v[b == k], (b == k).sum()) for k in np.unique(b)]), np.sort(b), weights)
                for _ in range(draws)])

    def cell(value, resampled, fmt):
        lo, hi = np.percentile(resampled, [2.5, 97.5])
        return f"{value:{fmt}} | {lo:{fmt}} to {hi:{fmt}}"

    rows = [f"| race, at the whole part's age mix | n | aged {BANDS[0][0]}-{BANDS[0][1]} | "
            + " | ".join(f"{metric} | 95 % interval" for metric in metrics) + " |",
            "|---|---:|---:|" + "---:|" * 2 * len(metrics)]
    rows += [f"| {name} | {n} | {share:.2f} | " + " | ".join(cell(point[name, m], boot[name, m], fmt)
                                                           for m, (_, fmt) in metrics.items()) + " |"
             for name, (n, share) in sizes.items()]
    if len(sizes) > 1:
        gaps = []
        for m, (_, fmt) in metrics.items():
            top = max(sizes, key=lambda g: point[g, m])
            low = min(sizes, key=lambda g: point[g, m])
            gaps.append(f"{top} - {low}: " + cell(point[top, m] - point[low, m], boot[top, m] - boot[low, m], fmt))
        rows.append("| gap (largest - smallest) | | | " + " | ".join(gaps) + " |")
    return rows + [""]

if __name__ == "__main__":
    sys.exit(main())
