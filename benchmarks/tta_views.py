"""Do more test-time views than the flip help? Validation accuracy of a model averaged over views.

    python benchmarks/tta_views.py --model pretrained/four_tasks_mini_xception_64px/model.keras \
        [--datasets fer2013 utkface pointing04] [--split valid]

Each arm (``utils.views.ARMS``) averages the model's outputs over its views and their mirror images
(test-time flip, mapped back with ``utils.tasks.unflip``), on the model input crops exactly as
``utils/evaluate.py`` feeds them:

* ``flip``: the crop alone (what ``utils/evaluate.py --flip`` and the demos do for a head its model's
  ``test_views`` does not name);
* ``five_crops``: the crop and the centre and four corners of a zoom-in to 0.92 of its side, each resized
  back (the 10-crop of Krizhevsky et al. 2012, with the whole crop added);
* ``scales``: zoom-in to 0.95, the crop, zoom-out to 1.05 (replicated border).
* ``shifts``: the crop and the crop moved by 2 % of its side left, right, up and down (replicated
  border): an average over framings as far apart as BlazeFace's keypoints move between a face alone
  and in a collage.

Prints accuracy (age: MAE in years) per dataset and task for every arm, then per head the arm that
scores best and its gain over ``flip`` with a paired bootstrap 95 % interval (the same rows resampled
for both arms): the four heads read the same forward passes, so each can average over its own views.
Choose on ``--split valid``: ``--write_views`` stores each head's best arm in the model's config.json
(``test_views``) where it beats flip by ``MIN_GAIN``, which ``utils/evaluate.py --flip`` and the demos read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.views import ARMS, DEFAULT_ARM, per_head, view, views_needed  # noqa: E402

MIN_GAIN = {"classes": 0.003, "years": 0.05}  # what a head's arm must gain over flip (accuracy; years of MAE)


def row_scores(kind: str, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per labelled row: 1 / 0 for a right / wrong class, the absolute error in years for ages."""
    from utils.kinds import KINDS, expected_value

    have = KINDS[kind].labelled(labels)
    y, p = labels[have], probs[have]
    return np.abs(expected_value(p) - y) if kind == "years" else (p.argmax(1) == y).astype(np.float64)


def paired_interval(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0) -> tuple:
    """Mean of ``a - b`` and its 95 % percentile bootstrap interval over rows (the same rows for both)."""
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (draws, len(d)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras file with its config.json beside it")
    p.add_argument("--datasets", nargs="+", default=["fer2013", "utkface", "pointing04"])
    p.add_argument("--split", default="valid", choices=("valid", "test"))
    p.add_argument("--data_dir", default=None)
    p.add_argument("--write_views", action="store_true",
                   help="store per head in the model's config.json the best arm if it beats flip by MIN_GAIN on this "
                        "split (valid only), else flip; utils/evaluate.py --flip and the demos then use it")
    a = p.parse_args(argv)
    if a.write_views and a.split != "valid":
        p.error("--write_views chooses on --split valid only (a test part chooses nothing)")
    from utils.evaluate import head_widths, load_model_and_config, select_rows
    from utils.kinds import kind_of
    from utils.pipelines import ImageCache, image_dataset
    from utils.tasks import flip_permutations, unflip

    net, config, _ = load_model_and_config(None, a.model)
    _, size, _, channels = net.input_shape
    print(f"{a.model}, {a.split} parts; accuracy (age: MAE in years), each arm with test-time flip")
    print("| dataset: task | " + " | ".join(ARMS) + " |")
    print("|---|" + "---:|" * len(ARMS))
    measured = []  # (dataset, task, kind, {arm: row scores})
    for dataset in a.datasets:
        table, _, wanted = select_rows(head_widths(net), config, dataset, a.split, None, a.data_dir)
        cache = ImageCache(table.paths, int(size), int(channels))
        images = np.concatenate([b.numpy() for b in image_dataset(table.paths, 256, int(size), int(channels), cache)]
                                ).astype(np.float32)
        perms = flip_permutations({t: table.info.vocab[t] for t in wanted})
        outputs = {}
        for v in views_needed({arm: arm for arm in ARMS}):  # every arm's views, each predicted once
            x = view(images, *v)
            own, mirrored = (net.predict(y, batch_size=256, verbose=0) for y in (x, x[:, :, ::-1]))
            outputs[v] = ({t: np.asarray(own[f"{t}_prediction"]) for t in wanted},
                          {t: unflip(np.asarray(mirrored[f"{t}_prediction"]), perms.get(t)) for t in wanted})
        rows, kinds = {t: {} for t in wanted}, {t: kind_of(table.info.vocab[t]).name for t in wanted}
        for arm in ARMS:
            for t, stacked in per_head(outputs, dict.fromkeys(wanted, arm)).items():
                rows[t][arm] = row_scores(kinds[t], table.labels[t], stacked.mean(0))
        for t in wanted:  # accuracy, or MAE in years: the mean of the rows' scores
            print(f"| {dataset}: {t} | " + " | ".join(f"{rows[t][arm].mean():.4f}" for arm in ARMS) + " |")
        measured.extend((dataset, t, kinds[t], r) for t, r in rows.items())
    print("\nper head, the best arm against flip (gain: accuracy, or years of MAE saved; paired bootstrap 95 %):")
    chosen = {}
    for dataset, t, kind, r in measured:
        sign = -1.0 if kind == "years" else 1.0  # lower MAE is better
        best = max(r, key=lambda arm: sign * r[arm].mean())
        gain, lo, hi = paired_interval(sign * r[best], sign * r["flip"])
        print(f"{dataset}: {t}: {best}, gain {gain:+.4f} ({lo:+.4f} to {hi:+.4f}), n = {len(r[best])}")
        chosen[t] = best if gain >= MIN_GAIN.get(kind, MIN_GAIN["classes"]) else DEFAULT_ARM
    if a.write_views:
        from utils.run_dir import atomic_write_text

        path = Path(a.model).with_name("config.json")
        config = json.loads(path.read_text())
        config["test_views"] = {**config.get("test_views", {}), **chosen}  # heads not measured keep theirs
        atomic_write_text(path, json.dumps(config, indent=2) + "\n")
        print(f"written: test_views {config['test_views']} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
