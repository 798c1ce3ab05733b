"""The probe: the model's features, logits and probabilities on a dataset, under that dataset's BatchNorm
statistics. Validation, the final test and the teacher read the model through it (one compiled forward).

In alternating runs the probe owns each dataset's BatchNorm statistics (``batchnorm.py``): estimated
after every one-dataset epoch, set while a dataset's rows are predicted, saved with each checkpoint so
that a resumed run predicts exactly as the uninterrupted one would.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from utils.engine.batchnorm import BN_SAMPLE, BatchNormStats, joint_sample, pooled, sample_paths

PREDICT_BATCH = 256  # images per inference batch (validation, testing, the teacher)


class Probe:
    def __init__(self, net, tasks: list, splits: list, input_size: int, channels: int, cache, seed: int):
        from models import feature_model

        self.forward = feature_model(net, tasks)
        self.bn = BatchNormStats(net)
        self.splits, self.size, self.channels, self.cache, self.seed = splits, input_size, channels, cache, seed
        self.per_dataset = None  # each training dataset's BatchNorm statistics, while runs use them

    # ------------------------------------------------------------------ BatchNorm statistics
    def estimate(self) -> list:
        """Each training dataset's statistics, on its seeded sample of ``BN_SAMPLE`` images."""
        return [self.bn.estimate_paths(sample_paths(sp.train.paths, BN_SAMPLE, self.seed), self.size, self.channels,
                                       self.cache) for sp in self.splits]

    def refresh(self, mode: str | None) -> None:
        """After an epoch: with ``mode`` per_dataset or mixed (``--bn_stats``, alternating epochs) estimate
        each dataset's statistics and give the model their equal mix; ``joint`` (``--precise_bn``) gives it
        the statistics of the datasets mixed as joint batches mix them; None keeps the moving averages."""
        if not self.bn or mode in (None, "moving"):
            self.per_dataset = None
            return
        if mode == "joint":
            sample = joint_sample([sp.train.paths for sp in self.splits], self.seed)
            self.bn.set(self.bn.estimate_paths(sample, self.size, self.channels, self.cache))
            self.per_dataset = None
            return
        per = self.estimate()
        self.bn.set(pooled(per))
        self.per_dataset = per if mode == "per_dataset" else None

    def use_own_statistics(self, per_dataset: bool) -> None:
        """For the final test: each dataset's statistics estimated afresh for the current weights, or the
        model's own."""
        self.per_dataset = self.estimate() if per_dataset and self.bn else None

    def statistics_for(self, table):
        """The BatchNorm statistics to normalise ``table`` with, or None for the model's own."""
        if self.per_dataset is None:
            return None
        for sp, stats in zip(self.splits, self.per_dataset):
            if sp.train.name == table.name:
                return stats
        return None

    @contextmanager
    def own_statistics(self):
        """Inside, passes may set each dataset's statistics; on leaving, the model has its own again."""
        own = self.bn.get() if self.per_dataset is not None else None
        try:
            yield
        finally:
            if own is not None:
                self.bn.set(own)

    def state_dict(self) -> dict:
        if self.per_dataset is None:
            return {}
        return {f"{d}/{i}/{j}": a for d, stats in enumerate(self.per_dataset) for i, pair in enumerate(stats)
                for j, a in enumerate(pair)}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            self.per_dataset = None
            return
        n_layers = len(self.bn.layers)
        self.per_dataset = [[(state[f"{d}/{i}/0"], state[f"{d}/{i}/1"]) for i in range(n_layers)]
                            for d in range(len(self.splits))]

    # ------------------------------------------------------------------ predictions
    def outputs(self, table, mirrored: bool = False) -> dict:
        """Features, logits and probabilities on ``table`` under its dataset's statistics (call inside
        ``own_statistics``); ``mirrored``: also the probabilities on the mirror images, as
        ``mirrored_<key>`` (the confidence of angles)."""
        import tensorflow as tf

        from utils.evaluation import predict
        from utils.pipelines import image_dataset

        stats = self.statistics_for(table)
        if stats is not None:
            self.bn.set(stats)
        ds = image_dataset(table.paths, PREDICT_BATCH, self.size, self.channels, self.cache)
        out = predict(self.forward, ds)
        if mirrored:
            flipped = predict(self.forward, ds.map(lambda x: tf.reverse(x, axis=[2])))
            out.update({f"mirrored_{k}": v for k, v in flipped.items() if k.endswith("_probs")})
        return out

    def evaluate(self, tables: list, heads: dict) -> dict:
        """Held-out metrics per task (``utils/kinds.py``) over the tables that label it, true labels only;
        ``loss`` is the held-out counterpart of the task's training loss."""
        from utils.evaluation import task_metrics

        with self.own_statistics():
            preds = [{t: out[f"{t}_probs"] for t in heads} for out in map(self.outputs, tables)]
        metrics = {}
        for t, head in heads.items():
            m = task_metrics(tables, preds, t, head.classes, head.kind.name)
            if m is not None:
                m["loss"] = head.validation_loss(m)
                metrics[t] = m
        return metrics


def validation_score(val: dict, heads: dict, mae_of_mean: dict) -> float:
    """``--monitor val_score``: the mean over tasks of each task's skill (its kind's ``skill``: 0 at chance,
    1 when perfect), so that every task weighs the same in the choice of the checkpoint, whatever the
    scale of its loss (higher is better)."""
    skills = [heads[t].kind.skill(m, heads[t].classes, mae_of_mean.get(t)) for t, m in val.items()]
    return float(np.mean(skills)) if skills else float("nan")
