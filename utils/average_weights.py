"""Average the weights of trained models of one architecture: SWA's average or a uniform model soup.

    python utils/average_weights.py --models RUN/checkpoint-*.keras --out DIR

Stochastic weight averaging (Izmailov et al., UAI 2018) averages the checkpoints of a run's last
epochs, trained at a constant learning rate and kept with ``--keep_checkpoints``; a uniform model soup
(Wortsman et al., ICML 2022) averages models fine-tuned from one start. The average lies inside the
region its members circle, which often generalises better than any one of them; whether it does here is
for validation to say (``utils/evaluate.py --split valid``). The average's BatchNorm statistics are not
its members' average (the SWA paper, sec. 3.2): they are estimated again for the averaged weights
(precise BN, ``utils/engine/batchnorm.py``) on the training images of the datasets in the first model's
config.json, mixed as the run trained them (joint runs in proportion to the datasets' sizes, others in
equal parts). Writes ``model.keras`` and ``config.json`` (the first model's, recording the averaged files
and dropping the temperatures, which must be fitted again with ``utils/model_card.py
--write_temperatures``) to ``--out``; the inputs are untouched.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402

log = logging.getLogger("utils.average_weights")


def average_models(paths: list):
    """The first model of ``paths`` with every weight (BatchNorm statistics included) replaced by the
    uniform average over all of them; the models must have the same weights by name and shape."""
    from models import load_model

    if not paths:
        raise DataError("no models to average")
    net, total = None, None
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"model file not found: {path}")
        model = load_model(path)
        layout = [(w.path, tuple(w.shape)) for w in model.weights]
        if net is None:
            net, reference, total = model, layout, [np.zeros(s, np.float64) for _, s in layout]
        elif layout != reference:
            diff = next((f"{a} vs {b}" for a, b in zip(layout, reference) if a != b),
                        f"{len(layout)} weights vs {len(reference)}")
            raise DataError(f"{path}: not the architecture of {paths[0]} ({diff})")
        for acc, value in zip(total, model.get_weights()):
            acc += value
    net.set_weights([(acc / len(paths)).astype(w.dtype) for acc, w in zip(total, net.get_weights())])
    return net


def recompute_batchnorm(net, config: dict, data_dir=None) -> int:
    """Estimate ``net``'s BatchNorm statistics afresh on its run's training images; returns the images used
    (0 when the model has no BatchNorm)."""
    from utils.engine.batchnorm import BN_SAMPLE, BatchNormStats, joint_sample, pooled, sample_paths
    from utils.evaluate import head_widths, select_rows
    from utils.pipelines import ImageCache

    bn = BatchNormStats(net)
    if not bn:
        return 0
    datasets = config.get("datasets") or []
    if not datasets:
        raise DataError("the model's config.json names no training datasets to estimate BatchNorm statistics on")
    heads, seed = head_widths(net), config.get("seed", 1)
    trains = [select_rows(heads, config, name, "train", tasks, data_dir)[1].paths for name, tasks in datasets]
    size, channels = int(net.input_shape[1]), int(net.input_shape[3])

    def statistics(paths):  # decoded and rounded as training decodes its cached images
        return bn.estimate_paths(paths, size, channels, ImageCache(paths, size, channels))

    if config.get("mode") == "joint":  # joint batches mix the datasets in proportion to their sizes
        sample = joint_sample(trains, seed)
        bn.set(statistics(sample))
        return len(sample)
    samples = [sample_paths(paths, BN_SAMPLE, seed) for paths in trains]
    bn.set(pooled([statistics(s) for s in samples]))
    return sum(len(s) for s in samples)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True, help=".keras models of one architecture (config.json "
                   "beside the first names its training datasets)")
    p.add_argument("--out", required=True, help="folder for the averaged model.keras and config.json")
    p.add_argument("--batchnorm", default="recompute", choices=("recompute", "average"),
                   help="recompute: estimate the statistics for the averaged weights (default); average: keep "
                        "the members' average")
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(a.out)
    try:
        if any(Path(m).suffix != ".keras" for m in a.models):
            raise DataError("average .keras models (a .tflite's weights are fixed)")
        if any(out.resolve() == Path(m).resolve().parent for m in a.models):
            raise DataError(f"--out {out}: a member's own folder; write the average elsewhere")
        config_path = Path(a.models[0]).with_name("config.json")
        if not config_path.is_file() and a.batchnorm == "recompute":
            raise DataError(f"{config_path}: not found; BatchNorm statistics are estimated on the training datasets "
                            f"it names (or pass --batchnorm average)")
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        from models import import_tensorflow_quietly

        import_tensorflow_quietly()
        net = average_models(a.models)
        images = recompute_batchnorm(net, config, a.data_dir) if a.batchnorm == "recompute" else 0
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    net.save(out / "model.keras")
    config = {k: v for k, v in config.items() if k != "temperatures"}
    from utils.run_dir import code_version

    config["averaged_from"] = {"models": [str(m) for m in a.models], "batchnorm": a.batchnorm,
                               "batchnorm_images": images, "code": code_version()}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    print(f"averaged {len(a.models)} models (BatchNorm: {a.batchnorm}"
          f"{f', {images} training images' if images else ''}) -> {out / 'model.keras'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
