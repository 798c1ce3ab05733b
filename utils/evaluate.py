"""Evaluate a trained model on any cleaned dataset: the cross-dataset table of face papers.

    python utils/evaluate.py --run runs/CONFUSION_EPGA_multitask/<run> --dataset expw
    python utils/evaluate.py --model pretrained/four_tasks_mini_xception_64px/model.keras --dataset fer2013 --split test

The model's heads that the dataset labels are evaluated on true labels only: accuracy, balanced
accuracy, per-class accuracy, and for age in years the MAE and the share within 5 years. ``--split``
picks the rows: ``all``, or ``train`` / ``valid`` / ``test`` reproduced with the split settings the
model was trained with (the run's ``config.json``, or the one beside a ``.keras`` file), so that
``--split test`` on a training dataset gives the run's own held-out numbers; another dataset's rows of a
split are its own ``split`` column's (a table of test rows only is evaluated whole). The tasks are the
model's heads that the CSV's columns label. A ``.tflite`` export is run without TensorFlow where LiteRT
is installed (``utils/runtime.py``). ``--flip`` predicts as the demos do: each output averaged with the
mirror image's, and over each head's test-time views named in the config (``utils/views.py``).
Output: ``metrics.json`` and ``confusion/<dataset>_<task>.txt|png`` in ``--out``, by default
``<data root>/eval/<model>_<dataset>_<split>/`` (never inside the model's folder).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError, parts_digest  # noqa: E402
from utils.views import VIEW_FLAGS  # noqa: E402

log = logging.getLogger("utils.evaluate")  # also when run as a script


def load_model_and_config(run: str | None, model: str | None):
    """(model, its config dict or {}, model path): a Keras model, or a ``TFLiteModel`` for a .tflite."""
    if run:
        path, config_path = Path(run) / "best.keras", Path(run) / "config.json"
    else:
        path, config_path = Path(model), Path(model).with_name("config.json")
    if not path.is_file():
        raise DataError(f"model file not found: {path}")
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if path.suffix == ".tflite":
        if not config.get("class_names"):
            raise DataError(f"{path}: a .tflite file is evaluated with the config.json of its run beside it "
                            f"(class names per head)")
        return TFLiteModel(path, config), config, path
    from models import load_model

    try:
        net = load_model(path)
    except Exception as exc:  # zip / h5 / deserialisation errors come in many types
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise DataError(f"{path}: not a loadable Keras model ({type(exc).__name__}{': ' + detail if detail else ''})"
                        ) from None
    if not isinstance(getattr(net, "output", None), dict):
        raise DataError(f"{path}: not a model of this project (its outputs are not '<task>_prediction' heads)")
    return net, config, path


class TFLiteModel:
    """A TFLite export behind the part of the Keras model API that evaluation uses (``output``, ``input_shape``,
    ``predict_batches``); its heads and classes come from the run's config.json."""

    def __init__(self, path: Path, config: dict):
        from types import SimpleNamespace

        from utils.runtime import RuntimeError_, TFLiteRunner

        classes = {f"{t}_prediction": len(names) for t, names in config["class_names"].items()}
        try:
            self.runner = TFLiteRunner(path, classes)
        except RuntimeError_ as exc:
            raise DataError(str(exc)) from None
        self.output = {k: SimpleNamespace(shape=(None, n)) for k, n in classes.items()}
        self.input_shape = self.runner.input_shape

    def predict_batches(self, batches) -> dict:
        import numpy as np

        parts = [self.runner(np.asarray(x)) for x in batches]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output}


def evaluate(net, config: dict, dataset: str, split: str = "test", tasks=None, data_dir=None,
             batch_size: int = 128, bn_stats: str = "auto", progress: bool = False, flip: bool = False) -> tuple:
    """``({task: metrics}, table)`` of ``net`` on ``dataset``'s rows of ``split`` (``predictions``)."""
    from utils.evaluation import task_metrics
    from utils.kinds import kind_of

    preds, table, wanted = predictions(net, config, dataset, split, tasks, data_dir, batch_size, bn_stats, progress,
                                       flip)
    return {t: task_metrics([table], [preds], t, preds[t].shape[1] if preds[t].ndim > 1 else 1,
                            kind_of(table.info.vocab[t]).name) for t in wanted}, table


def tested_per_dataset(config: dict) -> bool:
    """Whether a run tests each dataset under BatchNorm statistics of its own training images (alternating
    runs with ``--bn_stats per_dataset``; others test under the model's saved statistics)."""
    return config.get("mode") == "alternating" and config.get("bn_stats") == "per_dataset"


def labelling_dataset(config: dict, task: str, model) -> str:
    """The training dataset of a run's config.json that labels ``task`` (a DataError naming ``model`` if none)."""
    source = next((name for name, tasks in config.get("datasets", []) if task in tasks), None)
    if source is None:
        raise DataError(f"{model}: its config.json names no training dataset that labels '{task}'")
    return source


def head_widths(net) -> dict:
    """task -> output width of each ``<task>_prediction`` head of a Keras model or ``TFLiteModel``."""
    return {k.removesuffix("_prediction"): int(v.shape[-1]) for k, v in net.output.items()}


def select_rows(heads: dict, config: dict, dataset: str, split: str = "test", tasks=None, data_dir=None) -> tuple:
    """``(table, train, tasks)``: ``dataset``'s rows of ``split`` for a model with ``heads`` (task -> width),
    the dataset's training rows (its own run's training part, else its ``train`` rows or all of it) and
    the tasks to evaluate. A run's own datasets are split exactly as the run split them."""
    import numpy as np
    import pandas as pd

    from utils.datasets import csv_path_for, load_table, split_indices
    from utils.tasks import TASKS, dataset_info

    csv = csv_path_for(dataset, data_dir)
    columns = pd.read_csv(csv, nrows=0).columns if csv.is_file() else None  # an unknown dataset: its columns
    info = dataset_info(Path(dataset).stem.replace("_cleaned", ""), columns)
    wanted = list(tasks) if tasks else [t for t in TASKS if t in heads and t in info.vocab]
    missing = [t for t in wanted if t not in heads]
    if missing:
        raise DataError(f"the model has no {', '.join(missing)} head (it predicts {', '.join(heads)})")
    if not wanted:
        raise DataError(f"dataset '{dataset}' labels none of the model's tasks ({', '.join(heads)}); "
                        f"it labels {', '.join(info.tasks) or 'no known task'}")
    age_kind = {101: "years", 8: "groups"}.get(heads.get("age"), "auto") if "age" in wanted else "auto"
    pose_kind = "degrees" if heads.get("pose", 5) <= 3 else "bins"  # 1-3 angles, or the 5 yaw bins
    table = load_table(dataset, data_dir, wanted, "header", age_kind, pose_kind)
    for t in wanted:
        if len(table.info.vocab[t]) != heads[t]:
            raise DataError(f"'{t}': the model has {heads[t]} classes, dataset '{table.name}' "
                            f"{len(table.info.vocab[t])} ({', '.join(map(str, table.info.vocab[t]))[:80]})")
    from utils.engine.data import limited

    own = table.name in {n for n, _ in config.get("datasets", [])}  # the run's own --limit subsets
    seed = config.get("seed", 1)
    if own:
        table = limited(table, config.get("limit"), seed)
    whole, train = table, None
    if own:  # the run's own parts, exactly as it made them
        parts = split_indices(table, config.get("n_splits", 5), config.get("fold", 0), seed,
                              config.get("val_fraction", 0.1))
        train = limited(table.subset(parts["train"]), config.get("train_limit"), seed)
        if split != "all":
            table = train if split == "train" else table.subset(parts[split])
            recorded = config.get("split_digest", {}).get(table.name, {}).get(split)
            if recorded and recorded != parts_digest(table.paths):
                log.warning("%s: the %s part rebuilt from %s is not the one the run recorded (its images "
                            "differ: a different conversion); the numbers may include the run's training "
                            "faces", table.name, split, table.csv_path)
    elif split != "all" and table.split is not None and set(table.split) != {split}:
        rows = np.flatnonzero(table.split == split)
        if not len(rows):
            raise DataError(f"dataset '{table.name}' has no '{split}' rows in its split column "
                            f"(it has {', '.join(sorted(set(table.split)))}); use --split all or one of those")
        table = table.subset(rows)
    elif split != "all" and table.split is None:
        parts = split_indices(table, config.get("n_splits", 5), config.get("fold", 0), seed, 0.0)
        table = table.subset(parts["test" if split == "valid" else split])
    train = train if train is not None else (whole.subset(np.flatnonzero(whole.split == "train"))
                                             if whole.split is not None and (whole.split == "train").any() else whole)
    return table, train, wanted


def predictions(net, config: dict, dataset: str, split: str = "test", tasks=None, data_dir=None,
                batch_size: int = 128, bn_stats: str = "auto", progress: bool = False, flip: bool = False) -> tuple:
    """``({task: (N, C) outputs}, table, tasks)`` of ``net`` on ``dataset``'s rows of ``split``: the mean of
    ``view_predictions``' views (with ``flip``, each face and its mirror image: test-time flip)."""
    views, table, wanted = view_predictions(net, config, dataset, split, tasks, data_dir, batch_size, bn_stats,
                                            progress, flip)
    return {t: v.mean(0) for t, v in views.items()}, table, wanted


def view_predictions(net, config: dict, dataset: str, split: str = "test", tasks=None, data_dir=None,
                     batch_size: int = 128, bn_stats: str = "auto", progress: bool = False,
                     flip: bool = False) -> tuple:
    """``({task: (V, N, C) outputs}, table, tasks)`` of ``net`` on ``dataset``'s rows of ``split``, one
    output per view: the face (V = 1), and with ``flip`` the test-time views of the head's arm in the
    model's config (``utils/views.py``; by default the face and its mirror image, V = 2), each view with
    its mirror image (a flip permutes the yaw bins and negates yaw and roll, mapped back by
    ``utils.tasks.unflip``).

    ``bn_stats``: ``saved`` normalises with the BatchNorm statistics stored in the model; ``own``
    re-estimates them on 1,024 of the dataset's training rows first, as an alternating run with
    ``--bn_stats per_dataset`` evaluates its datasets; ``auto`` = ``own`` for such runs, else ``saved``.
    """
    import numpy as np

    from utils.evaluation import predict, predict_table

    table, train, wanted = select_rows(head_widths(net), config, dataset, split, tasks, data_dir)
    from utils.pipelines import ImageCache

    _, size, _, channels = net.input_shape
    if bn_stats == "auto":
        bn_stats = "own" if tested_per_dataset(config) and hasattr(net, "layers") else "saved"
    if bn_stats == "own" and not hasattr(net, "layers"):
        raise DataError("--bn_stats own re-estimates BatchNorm statistics in a Keras model; a .tflite has them fixed")
    if bn_stats == "own":
        from utils.engine.batchnorm import BN_SAMPLE, BatchNormStats, sample_paths

        bn = BatchNormStats(net)
        sample = sample_paths(train.paths, BN_SAMPLE, config.get("seed", 1))
        bn.set(bn.estimate_paths(sample, int(size), int(channels),  # as the run estimated them
                                 ImageCache(sample, int(size), int(channels))))
    # decoded once and rounded to uint8 after resizing, exactly as training and the demos feed the model
    cache = ImageCache(table.paths, int(size), int(channels))
    preds = predict_table(net, table, batch_size, int(size), int(channels), cache, progress=progress)
    if not flip:
        return {t: preds[t][None] for t in wanted}, table, wanted
    from utils.pipelines import image_dataset
    from utils.tasks import flip_permutations, unflip
    from utils.views import IDENTITY, head_arms, per_head, view, views_needed

    try:
        arms = head_arms(config, wanted)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    perms = flip_permutations({t: table.info.vocab[t] for t in wanted})
    images = image_dataset(table.paths, batch_size, int(size), int(channels), cache)
    mirrored = predict(net, images.map(lambda x: x[:, :, ::-1, :]))
    outputs = {IDENTITY: (preds, {t: unflip(mirrored[f"{t}_prediction"], perms.get(t)) for t in wanted})}
    others = views_needed(arms)[1:]
    pixels = np.concatenate([b.numpy() for b in images]).astype(np.float32) if others else None
    for v in others:  # OpenCV warps of the same pixels, as the demos apply them
        x = view(pixels, *v)
        batches = range(0, len(x), batch_size)
        own = predict(net, [x[i:i + batch_size] for i in batches])
        mirrored = predict(net, [x[i:i + batch_size, :, ::-1] for i in batches])
        outputs[v] = ({t: own[f"{t}_prediction"] for t in wanted},
                      {t: unflip(mirrored[f"{t}_prediction"], perms.get(t)) for t in wanted})
    return per_head(outputs, arms), table, wanted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder (its best.keras and config.json)")
    src.add_argument("--model", help=".keras file (a config.json beside it gives class names and splits), or a "
                     ".tflite export next to its model.keras")
    p.add_argument("--dataset", required=True, help="dataset name (data/db/<name>_cleaned.csv) or a .csv path")
    p.add_argument("--split", default="test", choices=("all", "train", "valid", "test"))
    p.add_argument("--task", nargs="*", default=None, help="tasks to evaluate (default: all the dataset labels)")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--flip", action="store_true",
                   help="test-time views: average every output with the output on the mirror image (and, for a "
                        "head the model's config.json names in test_views, over that arm's views); = --views model")
    p.add_argument("--views", default=None, choices=VIEW_FLAGS,
                   help="test-time views: 'model' as --flip, 'flip' the mirror image alone, 'none' one pass (the "
                        "default without --flip)")
    p.add_argument("--bn_stats", default="auto", choices=("auto", "saved", "own"),
                   help="BatchNorm statistics: the model's, or re-estimated on the dataset's training rows (auto: "
                        "as the run evaluated)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <data root>/eval/<model>_<dataset>_<split>, beside the data)")
    a = p.parse_args(argv)
    if a.flip and a.views not in (None, "model"):
        p.error(f"--flip means --views model; it contradicts --views {a.views}")
    views = a.views or ("model" if a.flip else "none")
    from models import import_tensorflow_quietly
    from utils.logs import setup_logging

    setup_logging()

    import_tensorflow_quietly()  # the data pipeline needs it; its start-up lines stay off the console
    try:
        net, config, path = load_model_and_config(a.run, a.model)
        if views == "flip":  # every head: the face and its mirror image only
            config = {**config, "test_views": {}}
        metrics, table = evaluate(net, config, a.dataset, a.split, a.task, a.data_dir, bn_stats=a.bn_stats,
                                  progress=True, flip=views != "none")
        stem = path.parent.name if path.stem in ("model", "best") else path.stem
        model_tag = Path(a.run).name if a.run else f"{stem}-{path.suffix.lstrip('.')}"
        out = Path(a.out) if a.out else (table.csv_path.parent.parent if table.csv_path.parent.name == "db"
                                         else table.csv_path.parent) / "eval" / f"{model_tag}_{table.name}_{a.split}"
        from utils.kinds import error_metrics
        from utils.run_dir import RunDir

        run = RunDir(out)
        names = config.get("class_names", {})
        result = {}
        for t, m in metrics.items():
            labels = m.get("confusion_names") or names.get(t) or [str(c) for c in table.info.vocab[t]]
            if "confusion" in m:  # kinds with classes or bins
                run.write_confusion(f"{table.name}_{t}", m["confusion"], labels, f"{table.name} {a.split}: {t}")
            result[t] = {**{k: m[k] for k in ("acc", "balanced_acc", "n")}, **error_metrics(m)}
            if "per_class_acc" in m:
                result[t]["per_class_acc"] = dict(zip(labels, m["per_class_acc"]))
        run.write_json("metrics.json", {"model": str(path), "dataset": table.name, "split": a.split,
                                        "rows": len(table), "metrics": result})
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for t, m in result.items():
        if "cs5" in m:  # ages in years: the MAE first (exact-year accuracy means little)
            print(f"{table.name} {a.split} {t}: MAE {m['mae']:.2f} years, within 5 years {m['cs5']:.3f} (n = {m['n']})")
            continue
        extra = ""
        if "mae_yaw" in m:  # angles in degrees
            extra = "  MAE " + ", ".join(f"{k[4:]} {v:.2f}" for k, v in m.items() if k.startswith("mae_")) + " degrees"
        print(f"{table.name} {a.split} {t}: accuracy {m['acc']:.4f}, balanced {m['balanced_acc']:.4f} "
              f"(n = {m['n']}){extra}")
    print(f"written: {(out / 'metrics.json').resolve()} and {(out / 'confusion').resolve()}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
