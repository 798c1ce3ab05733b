"""Evaluate a trained model on any cleaned dataset: the cross-dataset table of face papers.

    python utils/evaluate.py --run runs/CONFUSION_EPGA_multitask/<run> --dataset expw
    python utils/evaluate.py --model pretrained/four_tasks_mini_xception_48px/model.keras --dataset fer2013 --split test

The model's heads that the dataset labels are evaluated on true labels only: accuracy, balanced
accuracy, per-class accuracy, and for age in years the MAE and the share within 5 years. ``--split``
picks the rows: ``all``, or ``train`` / ``valid`` / ``test`` reproduced with the split settings the
model was trained with (the run's ``config.json``, or the one beside a ``.keras`` file), so that
``--split test`` on a training dataset gives the run's own held-out numbers. Output: a folder with
``metrics.json`` and ``confusion/<dataset>_<task>.txt|png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402


def load_model_and_config(run: str | None, model: str | None):
    """(keras model, its config dict or {}, model path)."""
    if run:
        path, config_path = Path(run) / "best.keras", Path(run) / "config.json"
    else:
        path, config_path = Path(model), Path(model).with_name("config.json")
    if not path.is_file():
        raise DataError(f"model file not found: {path}")
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if path.suffix == ".tflite":
        keras_twin = path.with_name("model.keras")
        if not keras_twin.is_file():
            raise DataError(f"{path}: a .tflite file is evaluated next to the model.keras it was exported from")
        return TFLiteModel(path, load_model_and_config(None, str(keras_twin))[0]), config, path
    from models import load_model

    try:
        net = load_model(path)
    except Exception as exc:  # zip / h5 / deserialisation errors come in many types
        raise DataError(f"{path}: not a loadable Keras model ({type(exc).__name__})") from None
    return net, config, path


class TFLiteModel:
    """A TFLite export behind the small part of the Keras model API that evaluation uses."""

    def __init__(self, path: Path, keras_model):
        from utils.export import TFLiteRunner

        self.output, self.input = keras_model.output, keras_model.input
        self.runner = TFLiteRunner(path, {k: v.shape[-1] for k, v in self.output.items()})

    def predict(self, dataset, verbose=0) -> dict:
        import numpy as np

        parts = [self.runner(np.asarray(x)) for x in dataset]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output}


def evaluate(net, config: dict, dataset: str, split: str = "test", tasks=None, data_dir=None,
             batch_size: int = 128, bn_stats: str = "auto") -> tuple:
    """``({task: metrics}, table)`` of ``net`` on ``dataset``'s rows of ``split``.

    ``bn_stats``: ``saved`` normalises with the BatchNorm statistics stored in the model; ``own``
    re-estimates them on 1,024 of the dataset's training rows first, as an alternating run with
    ``--bn_stats per_dataset`` evaluates its datasets; ``auto`` = ``own`` for such runs, else ``saved``.
    """
    from utils.datasets import load_table, split_indices
    from utils.evaluation import predict_table, task_metrics
    from utils.tasks import TASKS, dataset_info

    heads = {k.removesuffix("_prediction"): int(v.shape[-1]) for k, v in net.output.items()}
    info = dataset_info(Path(dataset).stem.replace("_cleaned", ""))
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
    parts = split_indices(table, config.get("n_splits", 5), config.get("fold", 0), seed,
                          config.get("val_fraction", 0.1))
    train = limited(table.subset(parts["train"]), config.get("train_limit") if own else None, seed)
    if split != "all":
        table = train if split == "train" else table.subset(parts[split])
    from utils.pipelines import ImageCache

    _, size, _, channels = net.input.shape
    if bn_stats == "auto":
        per_dataset = config.get("mode") == "alternating" and config.get("bn_stats") == "per_dataset"
        bn_stats = "own" if per_dataset and hasattr(net, "layers") else "saved"
    if bn_stats == "own":
        from utils.engine.batchnorm import BN_BATCH, BN_SAMPLE, BatchNormStats, sample_paths
        from utils.pipelines import image_dataset

        bn = BatchNormStats(net)
        sample = sample_paths(train.paths, BN_SAMPLE, config.get("seed", 1))
        bn.set(bn.estimate(image_dataset(sample, BN_BATCH, int(size), int(channels),  # as the run estimated them
                                         ImageCache(sample, int(size), int(channels)))))
    # decoded once and rounded to uint8 after resizing, exactly as training and the demos feed the model
    cache = ImageCache(table.paths, int(size), int(channels))
    preds = predict_table(net, table, batch_size, int(size), int(channels), cache)
    from utils.kinds import kind_of

    return {t: task_metrics([table], [preds], t, heads[t], kind_of(table.info.vocab[t]).name) for t in wanted}, table


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
    p.add_argument("--bn_stats", default="auto", choices=("auto", "saved", "own"),
                   help="BatchNorm statistics: the model's, or re-estimated on the dataset's training rows (auto: "
                        "as the run evaluated)")
    p.add_argument("--out", default=None, help="output folder (default: <run or model folder>/eval_<dataset>_<split>)")
    a = p.parse_args(argv)
    try:
        net, config, path = load_model_and_config(a.run, a.model)
        metrics, table = evaluate(net, config, a.dataset, a.split, a.task, a.data_dir, bn_stats=a.bn_stats)
        out = Path(a.out) if a.out else path.parent / f"eval_{table.name}_{a.split}"
        from utils.kinds import error_metrics
        from utils.run_dir import RunDir

        run = RunDir(out)
        names = config.get("class_names", {})
        result = {}
        for t, m in metrics.items():
            labels = m.get("confusion_names") or names.get(t) or [str(c) for c in table.info.vocab[t]]
            run.write_confusion(f"{table.name}_{t}", m["confusion"], labels, f"{table.name} {a.split}: {t}")
            result[t] = {**{k: m[k] for k in ("acc", "balanced_acc", "n")}, **error_metrics(m)}
            result[t]["per_class_acc"] = dict(zip(labels, m["per_class_acc"]))
        run.write_json("metrics.json", {"model": str(path), "dataset": table.name, "split": a.split,
                                        "rows": len(table), "metrics": result})
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for t, m in result.items():
        if "mae_yaw" in m:  # angles in degrees
            extra = "  MAE " + ", ".join(f"{k[4:]} {v:.2f}" for k, v in m.items() if k.startswith("mae_")) + " degrees"
        else:
            extra = f"  MAE {m['mae']:.2f} years, within 5 years {m['cs5']:.3f}" if "mae" in m else ""
        print(f"{table.name} {a.split} {t}: accuracy {m['acc']:.4f}, balanced {m['balanced_acc']:.4f} "
              f"(n = {m['n']}){extra}")
    print(f"written: {(out / 'metrics.json').resolve()} and {(out / 'confusion').resolve()}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
