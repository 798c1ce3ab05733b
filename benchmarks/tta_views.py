"""Do more test-time views than the flip help? Validation accuracy of a model averaged over views.

    python benchmarks/tta_views.py --model pretrained/four_tasks_mini_xception_64px/model.keras \
        [--datasets fer2013 utkface pointing04] [--split valid]

Each arm averages the model's outputs over its views and their mirror images (test-time flip, mapped
back with ``utils.tasks.unflip``), on the model input crops exactly as ``utils/evaluate.py`` feeds them:

* ``flip``: the crop alone (what ``utils/evaluate.py --flip`` and the demos do);
* ``five_crops``: the crop and the centre and four corners of a zoom-in to 0.92 of its side, each resized
  back (the 10-crop of Krizhevsky et al. 2012, with the whole crop added);
* ``scales``: zoom-in to 0.95, the crop, zoom-out to 1.05 (replicated border).
* ``shifts``: the crop and the crop moved by 2 % of its side left, right, up and down (replicated
  border): an average over framings as far apart as BlazeFace's keypoints move between a face alone
  and in a collage.

Prints accuracy (age: MAE in years) per dataset and task for every arm. Choose on ``--split valid``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)

ARMS = {  # name -> views (zoom, x offset, y offset); offsets of the view's centre in units of the crop's side
    "flip": [(1.0, 0, 0)],
    "five_crops": [(1.0, 0, 0), (0.92, 0, 0), (0.92, -0.04, -0.04), (0.92, 0.04, -0.04), (0.92, -0.04, 0.04),
                   (0.92, 0.04, 0.04)],
    "scales": [(0.95, 0, 0), (1.0, 0, 0), (1.05, 0, 0)],
    "shifts": [(1.0, 0, 0), (1.0, -0.02, 0), (1.0, 0.02, 0), (1.0, 0, -0.02), (1.0, 0, 0.02)],
}


def view(images: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """``images`` (N, S, S, C) zoomed by ``1 / zoom`` about a centre moved by (dx, dy) x the side S."""
    import cv2

    if (zoom, dx, dy) == (1.0, 0, 0):
        return images
    size = images.shape[1]
    s, c = 1.0 / zoom, size / 2
    m = np.array([[s, 0, c - s * (c + dx * size)], [0, s, c - s * (c + dy * size)]], np.float32)
    return np.stack([cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE).reshape(x.shape) for x in images])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras file with its config.json beside it")
    p.add_argument("--datasets", nargs="+", default=["fer2013", "utkface", "pointing04"])
    p.add_argument("--split", default="valid", choices=("valid", "test"))
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    from utils.evaluate import head_widths, load_model_and_config, select_rows
    from utils.evaluation import task_metrics
    from utils.kinds import kind_of
    from utils.pipelines import ImageCache, image_dataset
    from utils.tasks import flip_permutations, unflip

    net, config, _ = load_model_and_config(None, a.model)
    _, size, _, channels = net.input_shape
    print(f"{a.model}, {a.split} parts; accuracy (age: MAE in years), each arm with test-time flip")
    print("| dataset: task | " + " | ".join(ARMS) + " |")
    print("|---|" + "---:|" * len(ARMS))
    for dataset in a.datasets:
        table, _, wanted = select_rows(head_widths(net), config, dataset, a.split, None, a.data_dir)
        cache = ImageCache(table.paths, int(size), int(channels))
        images = np.concatenate([b.numpy() for b in image_dataset(table.paths, 256, int(size), int(channels), cache)]
                                ).astype(np.float32)
        perms = flip_permutations({t: table.info.vocab[t] for t in wanted})
        scores = {t: [] for t in wanted}
        for views in ARMS.values():
            total = {t: 0.0 for t in wanted}
            for zoom, dx, dy in views:
                x = view(images, zoom, dx, dy)
                for mirrored in (False, True):
                    out = net.predict(x[:, :, ::-1] if mirrored else x, batch_size=256, verbose=0)
                    for t in wanted:
                        o = np.asarray(out[f"{t}_prediction"])
                        total[t] = total[t] + (unflip(o, perms.get(t)) if mirrored else o)
            for t in wanted:
                probs = total[t] / (2 * len(views))
                m = task_metrics([table], [{t: probs}], t, probs.shape[1], kind_of(table.info.vocab[t]).name)
                scores[t].append(m["mae"] if "mae" in m else m["acc"])
        for t in wanted:
            print(f"| {dataset}: {t} | " + " | ".join(f"{v:.4f}" for v in scores[t]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
