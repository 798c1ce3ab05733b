"""The one training engine behind every script: single-task, joint ("confusion") and alternating.

A run is data: a list of datasets (each labelling some tasks), a backbone, a schedule and a
missing-task strategy (``PseudoConfig``). Each outer epoch

1. picks its training data: one dataset (STL, or the current turn of an alternating schedule) or all
   datasets mixed (joint, and the warm-up of alternating runs);
2. fills the tasks that data does not label: zeros (masked), or distilled / pseudo targets computed
   from a true snapshot of the model taken before the epoch (``utils.pseudo_labels``);
3. trains one Keras epoch with masked losses on a tf.data pipeline;
4. evaluates every task on its held-out validation rows (true labels only), writes metrics,
   confusion matrices and checkpoints, and applies learning-rate plateau and early stopping, whose
   state lives here and therefore survives across the per-epoch ``fit`` calls (in the reference they
   were reset every epoch and never fired).

At the end the best weights are evaluated on the test rows and written to ``test_metrics.json``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.datasets import DataError, Table, default_data_dir, load_table, split_indices
from utils.pseudo_labels import PseudoConfig, build_targets
from utils.tasks import TASKS, flip_permutations


@dataclass
class RunConfig:
    """Resolved configuration of one training run (written to the run folder as config.json)."""

    script: str
    mode: str  # stl | joint | alternating
    datasets: list  # [[name, [tasks...]], ...] in schedule order
    model: str = "mini_xception"
    epoch: int = 64
    batch_size: int = 32
    lr: float | None = None
    is_augmentation: bool = False
    is_dropout: bool = False
    is_bn: bool = False
    weights_decay: float = 0.0
    is_freezing: bool = False
    no_freezing_epoch: int = 32
    frozen_lr: float = 1e-3
    loss_weights: dict = field(default_factory=dict)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    warmup_epochs: int = 0
    regularization: dict = field(default_factory=dict)
    weighting: str = "fixed"  # loss-weighting strategy (utils/weighting.py)
    weighting_lr: float = 0.025  # step size of the strategy's own parameters
    cross_stitch: bool = True
    bn_recalibration: bool = True
    cache_mb: int = 3072
    plot_pseudo: bool = False  # weight histograms and t-SNE of pseudo labels per epoch
    age_kind: str = "auto"  # auto | groups | years
    age_sigma: float = 0.0  # years: Gaussian label smoothing around the true age
    age_loss: str = "auto"  # auto | ce | l1 (expected-value L1; auto = l1 for ssrnet, else ce)
    distribute: str = "none"  # none | mirrored | multiworker
    mixed_precision: bool = False
    jit: bool = False
    patience: int = 5
    early_stopping_patience: int | None = None
    monitor: str = "val_loss"
    n_splits: int = 5
    fold: int = 0
    val_fraction: float = 0.1
    seed: int = 1
    data_dir: str | None = None
    output_dir: str = "runs"
    run_name: str | None = None
    weights: str = "none"
    input_size: int | None = None
    limit: int | None = None
    image_check: str = "header"
    skip_bad_images: bool = False
    verbose: int = 2

    @property
    def tasks(self) -> list:
        seen = {t for _, ts in self.datasets for t in ts}
        return [t for t in TASKS if t in seen]

    def method_tag(self) -> str:
        if self.mode == "stl":
            return "stl"
        p = self.pseudo
        tag = {"naive": "naive", "distilled": f"distilled-T{p.distill_t:g}"}.get(p.mode)
        if tag is None:
            tag = "pseudo-soft" if p.is_interpolation else f"pseudo-hard-q{p.selection_threshold:g}"
            tag += "".join(s for s, on in (("-conf", p.is_pesudo_confidence), ("-dens", p.is_pesudo_density),
                                           ("-dist", p.is_pesudo_distribution), ("-mrf", p.is_MRF),
                                           ("-ltn", p.is_LTN)) if on)
        if self.regularization:
            tag += "-" + "-".join(k for k, v in self.regularization.items() if v and k != "sigma")
        if self.weighting != "fixed":
            tag += f"-w{self.weighting}"
        return f"{self.mode}-{tag}"


@dataclass
class Split:
    train: Table
    valid: Table
    test: Table
    protocol: str = ""  # how the parts were made when it is not the obvious way (printed, in config.json)


class PlateauControl:
    """Learning-rate plateau and early stopping on the monitored validation value, across epochs."""

    def __init__(self, patience: int, stop_patience: int, mode: str = "min", factor: float = 0.1,
                 min_lr: float = 1e-7):
        self.patience, self.stop_patience, self.mode = patience, stop_patience, mode
        self.factor, self.min_lr = factor, min_lr
        self.best = math.inf if mode == "min" else -math.inf
        self.wait_lr = self.wait_stop = 0

    def improved(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def step(self, value: float, lr: float) -> tuple:
        """Returns ``(is_best, new_lr, stop)`` after an epoch with monitored ``value``."""
        if self.improved(value):
            self.best, self.wait_lr, self.wait_stop = value, 0, 0
            return True, lr, False
        self.wait_lr += 1
        self.wait_stop += 1
        if self.wait_lr >= self.patience and lr > self.min_lr:
            lr, self.wait_lr = max(lr * self.factor, self.min_lr), 0
        return False, lr, self.wait_stop >= self.stop_patience


def load_splits(cfg: RunConfig) -> list:
    """Load, validate and split every dataset of the run (fails before any model is built)."""
    splits = []
    for name, tasks in cfg.datasets:
        table = load_table(name, cfg.data_dir, tasks, cfg.image_check, cfg.age_kind)
        if cfg.limit:
            table = table.subset(np.random.default_rng(cfg.seed).permutation(len(table))[:cfg.limit])
        if cfg.skip_bad_images:
            from utils.datasets import undecodable

            bad = {p for p, _ in undecodable(table.paths)}
            if bad:
                print(f"note: {name}: dropped {len(bad)} rows whose image TensorFlow cannot decode "
                      f"(e.g. {sorted(bad)[0]})")
                table = table.subset(np.flatnonzero([p not in bad for p in table.paths]))
        parts = split_indices(table, cfg.n_splits, cfg.fold, cfg.seed, cfg.val_fraction)
        splits.append(Split(*(table.subset(parts[s]) for s in ("train", "valid", "test")),
                            parts.get("protocol", "")))
        if parts.get("protocol"):
            print(f"note: {name}: {parts['protocol']}")
    return splits


def class_counts(splits: list, cfg: RunConfig) -> tuple:
    """Number of classes and class names per task (from the datasets that label it)."""
    classes, names = {}, {}
    for (name, tasks), sp in zip(cfg.datasets, splits):
        for t in tasks:
            vocab = sp.train.info.vocab[t]
            if t in classes and classes[t] != len(vocab):
                raise DataError(f"datasets disagree on the classes of '{t}': {len(vocab)} in '{name}' "
                                f"vs {classes[t]}")
            classes[t], names[t] = len(vocab), list(vocab)
    return classes, names


class Trainer:
    """Runs one configuration end to end; see the module docstring."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, resume: bool = False) -> None:
        import keras

        from models import ModelSpec, build_net
        from utils.run_dir import RunDir, claim_run_folder

        cfg = self.cfg
        keras.utils.set_random_seed(cfg.seed)
        # the policy is process-wide: set it either way so that runs in one process do not leak into each other
        keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
        self.strategy = make_strategy(cfg.distribute)
        self.multiworker = cfg.distribute == "multiworker"
        if cfg.data_dir is None:
            cfg.data_dir = str(default_data_dir())
        self.splits = load_splits(cfg)
        self.classes, self.class_names = class_counts(self.splits, cfg)
        self.flip_perms = flip_permutations(self.class_names)
        self._budget = {"steps": 0, **{f"passes_{t}": 0 for t in self.classes}}  # see budget()
        self.spec = ModelSpec(cfg.model, self.classes, cfg.input_size, cfg.is_dropout, cfg.is_bn,
                              cfg.weights_decay, cfg.cross_stitch, cfg.weights, cfg.regularization)
        cfg.input_size = self.spec.input_size
        if cfg.lr is None:
            cfg.lr = 1e-4 if self.spec.backbone == "vggFace" else 1e-3
        with self.strategy.scope():
            self.model = build_net(self.spec)
        if cfg.distribute != "none":  # replicas share BatchNorm batch statistics (and so moving averages)
            for layer in all_layers(self.model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        self.snapshot = None
        self.cache = self.build_cache()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if not cfg.run_name:
            ds = "-".join(n for n, _ in cfg.datasets)
            cfg.run_name = f"{ds}-{self.spec.backbone}-{cfg.method_tag()}-{stamp}"
        folder = run_folder(cfg, self.strategy)
        if not resume and not self.multiworker:  # never reuse a run folder (workers share theirs by design)
            folder = claim_run_folder(folder)
            cfg.run_name = folder.name
        self.run = RunDir(folder)
        if not resume:
            self.write_config(stamp)
        monitor_mode = "min" if self.cfg.monitor == "val_loss" else "max"
        self.plateau = PlateauControl(cfg.patience, cfg.early_stopping_patience or 2 * cfg.patience,
                                      monitor_mode)
        self.frozen = None
        self.lr = cfg.lr

    def write_config(self, stamp: str) -> None:
        cfg = self.cfg
        self.run.write_json("config.json", {
            **dataclasses.asdict(cfg), "tasks": cfg.tasks, "classes": self.classes,
            "class_names": self.class_names, "model_spec": dataclasses.asdict(self.spec),
            "split_sizes": {n: {s: len(getattr(sp, s)) for s in ("train", "valid", "test")}
                            for (n, _), sp in zip(cfg.datasets, self.splits)},
            "split_protocol": {n: sp.protocol for (n, _), sp in zip(cfg.datasets, self.splits) if sp.protocol},
            "started": stamp})

    def build_cache(self):
        """Decode every image of the run once into memory when it fits in ``cache_mb``."""
        from utils.pipelines import ImageCache

        paths = {p for sp in self.splits for part in (sp.train, sp.valid, sp.test) for p in part.paths}
        need = ImageCache.nbytes(len(paths), self.spec.input_size, self.spec.channels)
        if need > self.cfg.cache_mb * 2**20:
            print(f"image cache off: {need / 2**20:.0f} MB needed, --cache_mb={self.cfg.cache_mb}")
            return None
        t0 = time.time()
        cache = ImageCache(list(paths), self.spec.input_size, self.spec.channels)
        print(f"image cache: {len(paths)} images, {need / 2**20:.0f} MB, decoded in {time.time() - t0:.1f}s")
        return cache

    def compile(self, lr: float) -> None:
        import keras

        from utils.losses import MaskedAccuracy

        keys = [f"{t}_prediction" for t in self.classes]
        with self.strategy.scope():
            self.model.compile(
                optimizer=keras.optimizers.Adam(lr),
                loss={f"{t}_prediction": self.task_loss(t) for t in self.classes},
                loss_weights={f"{t}_prediction": float(self.cfg.loss_weights.get(t, 1.0)) for t in self.classes},
                metrics={k: [MaskedAccuracy(name="acc")] for k in keys},
                jit_compile=bool(self.cfg.jit))
        if self.cfg.weighting != "fixed":
            self.install_weighting()

    def install_weighting(self) -> None:
        """Let the ``--weighting`` strategy drive the training step (utils/weighted_step.py)."""
        from models import trunk_layers
        from utils import weighted_step
        from utils.weighting import make_weighting

        tasks = list(self.classes)
        if getattr(self, "weighting", None) is None:
            self.weighting = make_weighting(self.cfg.weighting, tasks,
                                            [float(self.cfg.loss_weights.get(t, 1.0)) for t in tasks],
                                            self.cfg.weighting_lr)
        shared = [v for layer in trunk_layers(self.model, tasks) for v in layer.trainable_weights]
        kernels = [v.path for v in shared if v.path.endswith("kernel")]
        weighted_step.install(self.model, self.weighting, {f"{t}_prediction": self.task_loss(t) for t in tasks},
                              {v.path for v in shared}, kernels[-1] if kernels else None)

    def task_loss(self, task: str):
        """Masked CE, or the expected-value L1 for SSR-Net's regression heads / ``--age_loss l1``."""
        from utils.losses import LOSSES

        if self.spec.backbone == "ssrnet":
            return LOSSES["l1"]
        if task == "age" and self.classes[task] == 101 and self.cfg.age_loss == "l1":
            return LOSSES["l1"]
        return LOSSES["ce"]

    def set_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the backbone (two-stage schedule of ``--is_freezing``), then recompile."""
        from models import trunk_layers

        if frozen == self.frozen:
            return
        for layer in trunk_layers(self.model, self.classes):
            layer.trainable = not frozen
        self.frozen = frozen
        self.lr = self.cfg.frozen_lr if frozen else self.cfg.lr
        self.compile(self.lr)

    # ------------------------------------------------------------------------------------- schedule
    def phase(self, epoch: int):
        """Training data of an epoch: ``'joint'`` or the index of the single dataset to train on."""
        cfg = self.cfg
        if cfg.mode == "stl":
            return 0
        if cfg.mode == "joint" or epoch < cfg.warmup_epochs:
            return "joint"
        return (epoch - cfg.warmup_epochs) % len(self.splits)

    def take_snapshot(self):
        """A true copy of the current model (own variables), and its feature/logit probe."""
        import keras

        from models import feature_model

        if self.snapshot is None:
            with self.strategy.scope():
                self.snapshot = keras.models.clone_model(self.model)
                self.probe = feature_model(self.snapshot, list(self.classes))
        self.snapshot.set_weights(self.model.get_weights())
        return self.probe

    def probe_outputs(self, probe, table: Table) -> dict:
        from utils.evaluation import predict
        from utils.pipelines import image_dataset

        ds = image_dataset(table.paths, max(self.cfg.batch_size, 64), self.spec.input_size, self.spec.channels,
                           self.cache)
        return predict(probe, ds, local=self.multiworker)

    def fills_for(self, unlabelled: list, epoch: int) -> tuple:
        """Targets for the tasks each table in ``unlabelled`` lacks.

        Returns ``({(i, task): rows}, stats)`` where ``i`` indexes ``unlabelled``. Pseudo labels of a
        task are computed over the union of the tables lacking it (so density and distribution see the
        whole unlabelled set), from the snapshot's predictions.
        """
        p = self.cfg.pseudo
        if p.mode == "naive" or epoch < self.cfg.warmup_epochs:
            return {}, {}
        probe = self.take_snapshot()
        memo = {}  # one forward pass per table, whatever the number of tasks that need it

        def outputs(table):
            if id(table) not in memo:
                memo[id(table)] = self.probe_outputs(probe, table)
            return memo[id(table)]

        outs = [outputs(t) for t in unlabelled]
        fills, stats = {}, {}
        for task in self.classes:
            members = [i for i, t in enumerate(unlabelled) if task not in t.labels]
            if not members:
                continue
            logits = np.concatenate([outs[i][f"{task}_logits"] for i in members])
            probs = np.concatenate([outs[i][f"{task}_probs"] for i in members])
            oracle = np.concatenate([unlabelled[i].oracle.get(task, np.full(len(unlabelled[i]), -1))
                                     for i in members])
            feat_u = feat_l = None
            if p.needs_features:
                feat_u = np.concatenate([outs[i][f"{task}_features"] for i in members])
                labelled = [sp.train for sp in self.splits if task in sp.train.labels]
                lab_out = [outputs(t) for t in labelled]
                feat_l = np.concatenate([o[f"{task}_features"] for o in lab_out])
                if p.is_LTN:
                    probs = self.transfer_labels(task, labelled, lab_out, members, outs, feat_u)
                    logits = np.log(np.clip(probs, 1e-8, 1.0))
                if p.is_MRF:
                    from utils.mrf import mean_field

                    probs = mean_field(probs, feat_u)
                    logits = np.log(np.clip(probs, 1e-8, 1.0))
            result = build_targets(p, logits, probs, feat_u, feat_l, oracle)
            if self.cfg.plot_pseudo:
                from utils.pseudo_plots import plot_pseudo_labels

                plot_pseudo_labels(self.run.path / "pseudo", epoch + 1, task, result, feat_u, oracle, self.cfg.seed)
            start = 0
            for i in members:
                n = len(unlabelled[i])
                fills[(i, task)] = result.targets[start:start + n]
                start += n
            stats.update({f"pseudo_{task}_{k}": v for k, v in result.stats.items()})
        return fills, stats

    def transfer_labels(self, task, labelled, lab_out, members, outs, feat_u) -> np.ndarray:
        """LEL-LTN: the label transfer network's probabilities for ``task`` on the unlabelled rows."""
        from utils.label_transfer import fit_and_transfer, transfer_inputs

        others = [t for t in self.classes if t != task]
        x_l = transfer_inputs([np.concatenate([o[f"{t}_probs"] for o in lab_out]) for t in others],
                              np.concatenate([o[f"{task}_features"] for o in lab_out]))
        y_l = np.concatenate([t.labels[task] for t in labelled])
        x_u = transfer_inputs([np.concatenate([outs[i][f"{t}_probs"] for i in members]) for t in others], feat_u)
        probs, _ = fit_and_transfer(x_l[y_l >= 0], y_l[y_l >= 0], x_u, self.classes[task], seed=self.cfg.seed)
        return probs

    def epoch_data(self, epoch: int):
        """(paths, targets, stats, phase name) for one epoch."""
        from utils.pipelines import alternating_arrays, joint_arrays, stl_arrays

        ph = self.phase(epoch)
        trains = [sp.train for sp in self.splits]
        if self.cfg.mode == "stl":
            paths, targets = stl_arrays(trains[0], self.classes)
            stats, name = {}, trains[0].name
        elif ph == "joint":
            fills, stats = self.fills_for(trains, epoch)
            (paths, targets), name = joint_arrays(trains, self.classes, fills), "joint"
        else:
            fills, stats = self.fills_for([trains[ph]], epoch)
            task_fills = {t: rows for (_, t), rows in fills.items()}
            (paths, targets), name = alternating_arrays(trains[ph], self.classes, task_fills), trains[ph].name
        if self.cfg.age_sigma > 0 and self.classes.get("age") == 101:
            targets["age"] = smooth_years(targets["age"], self.cfg.age_sigma)
        return paths, targets, stats, name

    def budget(self, epoch: int, n_rows: int) -> dict:
        """Optimizer steps and true-label passes per task, cumulative over the run (equal-budget checks).

        A pass of a task is one sweep over the training rows that carry its true label; joint epochs
        make one pass per task, an alternating epoch one pass for the tasks of its dataset only.
        """
        self._budget["steps"] += math.ceil(n_rows / self.cfg.batch_size)
        phase = self.phase(epoch)
        tables = [sp.train for sp in self.splits] if phase == "joint" else [self.splits[
            0 if self.cfg.mode == "stl" else phase].train]
        for t in self.classes:
            if any(t in tb.labels for tb in tables):
                self._budget[f"passes_{t}"] += 1
        return dict(self._budget)

    def recalibrate_batchnorm(self, epoch: int, n_images: int = 640) -> None:
        """Re-estimate BatchNorm moving statistics on a mixed sample of every training dataset.

        After an epoch on one dataset the moving statistics describe that dataset's image style
        only; evaluation and the next epoch's pseudo labels would then normalise the other datasets
        with the wrong statistics. Forward passes in training mode (no gradient step) on a seeded
        mixed sample fix that. No-op for models without BatchNorm.
        """
        import keras

        from utils.pipelines import image_dataset

        if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in all_layers(self.model)):
            return
        rng = np.random.default_rng([self.cfg.seed, epoch])
        per = max(1, n_images // len(self.splits))
        paths = np.concatenate([rng.choice(sp.train.paths, min(per, len(sp.train)), replace=False)
                                for sp in self.splits])
        for x in image_dataset(rng.permutation(paths), self.cfg.batch_size, self.spec.input_size,
                               self.spec.channels, self.cache):
            self.model(x, training=True)

    # ----------------------------------------------------------------------------------- evaluation
    def evaluate(self, part: str) -> dict:
        from utils.evaluation import predict_table, task_metrics

        tables = [getattr(sp, part) for sp in self.splits]
        preds = [predict_table(self.model, t, max(self.cfg.batch_size, 64), self.spec.input_size,
                               self.spec.channels, self.cache, local=self.multiworker) for t in tables]
        from utils.losses import LOSSES

        metrics = {t: task_metrics(tables, preds, t, c) for t, c in self.classes.items()}
        metrics = {t: m for t, m in metrics.items() if m is not None}
        for t, m in metrics.items():  # validation loss = the loss the task is trained with
            if self.task_loss(t) is LOSSES["l1"]:
                m["loss"] = m["expectation_l1"]
        return metrics

    def monitored(self, val: dict) -> float:
        if self.cfg.monitor == "val_loss":
            return sum(self.cfg.loss_weights.get(t, 1.0) * m["loss"] for t, m in val.items())
        return float(np.mean([m["acc"] for m in val.values()]))

    # ----------------------------------------------------------------------------------------- loop
    def fit(self, resume: bool = False) -> dict:
        import keras
        import tensorflow as tf

        from utils.pipelines import make_dataset, raise_undecodable

        cfg = self.cfg
        self.setup(resume)
        gpus = tf.config.list_physical_devices("GPU")
        print(f"device: {f'{len(gpus)} GPU(s)' if gpus else 'CPU (no GPU visible to TensorFlow)'}")
        print(f"run folder: {self.run.path.resolve()}")
        print(f"tasks: {self.classes}  datasets: "
              + ", ".join(f"{sp.train.name} (train {len(sp.train)}, valid {len(sp.valid)}, test "
                          f"{len(sp.test)})" for sp in self.splits))
        start = self.restore() if resume else 0
        if not resume:
            self.set_frozen(bool(cfg.is_freezing))
        for epoch in range(start, cfg.epoch):
            t0 = time.time()
            keras.utils.set_random_seed(cfg.seed * 1000 + epoch)  # same dropout / sampling after a resume
            if cfg.is_freezing and epoch == cfg.no_freezing_epoch:
                self.set_frozen(False)
            paths, targets, stats, phase = self.epoch_data(epoch)
            timing = {"seconds_targets": time.time() - t0}
            t1 = time.time()
            if self.multiworker:
                hist = self.distributed_epoch(paths, targets, epoch)
            else:
                ds = make_dataset(paths, targets, cfg.batch_size, self.spec.input_size, self.spec.channels,
                                  shuffle=True, seed=cfg.seed, augment=cfg.is_augmentation, repeat_epoch=epoch,
                                  cache=self.cache, flip_perms=self.flip_perms)
                try:
                    hist = self.model.fit(ds, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                                          verbose=1 if sys.stdout.isatty() else 0,
                                          callbacks=[keras.callbacks.TerminateOnNaN()]).history
                except tf.errors.InvalidArgumentError:
                    if self.cache is not None:
                        raise
                    raise_undecodable(paths)
            check_finite(hist, epoch, phase, self.run.path)
            timing["seconds_fit"], t1 = time.time() - t1, time.time()
            if cfg.bn_recalibration and cfg.mode == "alternating" and phase != "joint":
                self.recalibrate_batchnorm(epoch)
            timing["seconds_bn"], t1 = time.time() - t1, time.time()
            val = self.evaluate("valid")
            value = self.monitored(val)
            check_finite({"validation loss": [value]}, epoch, phase, self.run.path)
            is_best, new_lr, stop = self.plateau.step(value, self.lr)
            row = {"epoch": epoch + 1, "phase": phase, "lr": self.lr, "frozen": int(bool(self.frozen)),
                   "seconds": 0.0, **{f"train_{k}": float(v[-1]) for k, v in hist.items()}, **stats,
                   cfg.monitor: value, **self.budget(epoch, len(paths))}
            if getattr(self, "weighting", None) is not None:
                self.weighting.epoch_end({t: float(hist[f"{t}_prediction_loss"][-1]) for t in self.classes
                                          if f"{t}_prediction_loss" in hist})
                row.update({f"weighting_{k}": v for k, v in self.weighting.state().items()})
            for t, m in val.items():
                row[f"val_{t}_acc"], row[f"val_{t}_loss"] = m["acc"], m["loss"]
                if "mae" in m:
                    row[f"val_{t}_mae"], row[f"val_{t}_cs5"] = m["mae"], m["cs5"]
                self.run.write_confusion(f"epoch_{epoch + 1:03d}_{t}", m["confusion"],
                                         m.get("confusion_names", self.class_names[t]),
                                         f"epoch {epoch + 1} {t} (valid)")
            timing["seconds_eval"] = time.time() - t1
            row.update({k: round(v, 2) for k, v in timing.items()})
            row["seconds"] = round(time.time() - t0, 2)
            print(f"epoch {epoch + 1}/{cfg.epoch} [{phase}] "
                  + " ".join(f"val_{t}_acc={m['acc']:.4f}" + (f" val_{t}_mae={m['mae']:.2f}" if "mae" in m else "")
                             for t, m in val.items())
                  + f" {cfg.monitor}={value:.4f}"
                  + "".join(f" {k}={v:.3f}" for k, v in stats.items() if isinstance(v, float))
                  + (" *" if is_best else "") + f" ({row['seconds']:.1f}s)", flush=True)
            if new_lr != self.lr:
                print(f"  learning rate {self.lr:.2e} -> {new_lr:.2e} (no improvement for {cfg.patience} epochs)")
                self.lr = new_lr
                self.model.optimizer.learning_rate.assign(new_lr)
            self.checkpoint(epoch, row, is_best, stop)
            if stop:
                print(f"  early stopping after epoch {epoch + 1}: no improvement for "
                      f"{self.plateau.stop_patience} epochs")
                break
        return self.finish()

    def distributed_epoch(self, paths, targets, epoch: int) -> dict:
        """One epoch under MultiWorkerMirroredStrategy with an explicit ``strategy.run`` step.

        Keras 3's ``fit`` does not run under this strategy (keras-team/keras#20585). Every worker
        shuffles with the same seed, keeps its own shard, and runs the same number of steps (so the
        gradient all-reduce never waits for a worker that ran out of data). ``--batch_size`` is the
        global batch. The loss is the compiled one: weighted masked cross-entropies + layer losses.
        """
        import tensorflow as tf

        from utils.losses import masked_cce
        from utils.pipelines import make_dataset

        cfg, strategy = self.cfg, self.strategy
        n_rep = strategy.num_replicas_in_sync
        per_replica = max(1, cfg.batch_size // n_rep)
        steps = len(paths) // (per_replica * n_rep)
        if steps == 0:
            raise DataError(f"epoch {epoch + 1}: {len(paths)} samples are fewer than one global batch")

        def dataset_fn(ctx):
            return make_dataset(paths, targets, per_replica, self.spec.input_size, self.spec.channels, shuffle=True,
                                seed=cfg.seed, augment=cfg.is_augmentation, repeat_epoch=epoch, cache=self.cache,
                                shard=(ctx.num_input_pipelines, ctx.input_pipeline_id), drop_remainder=True,
                                flip_perms=self.flip_perms).take(steps)

        model, weights = self.model, {t: float(cfg.loss_weights.get(t, 1.0)) for t in self.classes}
        if getattr(self, "_step_for", None) is not self.model.optimizer:
            def replica_step(x, y):
                with tf.GradientTape() as tape:
                    pred = model(x, training=True)
                    task_loss = {t: masked_cce(y[f"{t}_prediction"], pred[f"{t}_prediction"]) for t in weights}
                    loss = tf.add_n([weights[t] * v for t, v in task_loss.items()] + list(model.losses))
                    scaled = loss / n_rep  # the all-reduce sums replica gradients
                grads = tape.gradient(scaled, model.trainable_variables)
                model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
                hits = {t: tf.reduce_sum(tf.cast(tf.logical_and(
                    tf.reduce_any(y[f"{t}_prediction"] != 0, -1),
                    tf.argmax(y[f"{t}_prediction"], -1) == tf.argmax(pred[f"{t}_prediction"], -1)), tf.float32))
                    for t in weights}
                counts = {t: tf.reduce_sum(tf.cast(tf.reduce_any(y[f"{t}_prediction"] != 0, -1), tf.float32))
                          for t in weights}
                return loss, task_loss, hits, counts

            @tf.function
            def step(x, y):
                out = strategy.run(replica_step, args=(x, y))
                return tf.nest.map_structure(lambda v: strategy.reduce("SUM", v, axis=None), out)

            self._step, self._step_for = step, self.model.optimizer
        total, task_sums = 0.0, {t: 0.0 for t in weights}
        hits, counts = {t: 0.0 for t in weights}, {t: 0.0 for t in weights}
        for x, y in strategy.distribute_datasets_from_function(dataset_fn):
            loss, task_loss, h, c = self._step(x, y)
            total += float(loss) / n_rep
            for t in weights:
                task_sums[t] += float(task_loss[t]) / n_rep
                hits[t] += float(h[t])
                counts[t] += float(c[t])
        hist = {"loss": [total / steps]}
        for t in weights:
            hist[f"{t}_prediction_loss"] = [task_sums[t] / steps]
            hist[f"{t}_prediction_acc"] = [hits[t] / max(counts[t], 1.0)]
        return hist

    # ------------------------------------------------------------------------------- checkpoints
    def checkpoint(self, epoch: int, row: dict, is_best: bool, stop: bool) -> None:
        """Persist one finished epoch so that a killed run resumes after it.

        Order: weights + optimizer state under epoch-numbered names, the metrics row, then
        ``state.json`` (atomic rename) pointing at them. A crash before the rename leaves the
        previous state intact; older checkpoints are removed only afterwards.
        """
        from utils.run_dir import atomic_link, atomic_save_model, atomic_save_npz

        path = self.run.path
        ckpt, opt = f"checkpoint-{epoch:03d}.keras", f"optimizer-{epoch:03d}.npz"
        t0 = time.time()
        atomic_save_model(self.model, path / ckpt)  # serialised once; last/best are links to it
        atomic_link(path / ckpt, path / "last.keras")
        if is_best:
            atomic_link(path / ckpt, path / "best.keras")
        atomic_save_npz(path / opt, [np.asarray(v) for v in self.model.optimizer.variables])
        row["seconds_checkpoint"] = round(time.time() - t0, 2)
        self.run.append_metrics(row)
        self.run.write_json("state.json", {
            "epoch": epoch, "checkpoint": ckpt, "optimizer": opt, "lr": self.lr, "frozen": bool(self.frozen),
            "stopped": bool(stop), "plateau": vars(self.plateau)})
        for old in list(path.glob("checkpoint-*.keras")) + list(path.glob("optimizer-*.npz")):
            if old.name not in (ckpt, opt):
                old.unlink()

    def restore(self) -> int:
        """Load the state of the last finished epoch; returns the epoch to continue with."""
        from models import load_model

        state_path = self.run.path / "state.json"
        if not state_path.exists():
            raise DataError(f"{self.run.path}: no state.json; nothing to resume (did the first epoch finish?)")
        state = json.loads(state_path.read_text())
        self.frozen = None
        self.set_frozen(state["frozen"])
        saved = load_model(self.run.path / state["checkpoint"])
        self.model.set_weights(saved.get_weights())
        self.model.optimizer.build(self.model.trainable_variables)
        with np.load(self.run.path / state["optimizer"]) as opt:
            values = [opt[f"arr_{i}"] for i in range(len(opt.files))]
        for var, value in zip(self.model.optimizer.variables, values):
            var.assign(value)
        self.lr = state["lr"]
        self.model.optimizer.learning_rate.assign(self.lr)
        self.plateau.__dict__.update(state["plateau"])
        self.run.truncate_metrics(state["epoch"] + 1)
        last = self.run.last_metrics()
        if "steps" in last:  # budget counters continue where the run stopped
            self._budget = {k: int(float(last[k])) for k in self._budget}
        print(f"resumed after epoch {state['epoch'] + 1} (learning rate {self.lr:.2e})")
        if self.cfg.weighting != "fixed":  # not saved in checkpoints yet
            print(f"note: --weighting={self.cfg.weighting} starts its own weights afresh after a resume")
        return cfg_epoch_after(state)

    def finish(self) -> dict:
        from models import load_model

        best = self.run.path / "best.keras"
        if best.exists():
            self.model.set_weights(load_model(best).get_weights())
        test = self.evaluate("test")
        for t, m in test.items():
            self.run.write_confusion(f"test_{t}", m["confusion"], m.get("confusion_names", self.class_names[t]),
                                     f"test {t} (best weights)")
        for t, m in test.items():
            if "mae" in m:  # reference point: always predicting the training-set mean age
                train = np.concatenate([sp.train.labels[t] for sp in self.splits if t in sp.train.labels])
                truth = np.concatenate([sp.test.labels[t] for sp in self.splits if t in sp.test.labels])
                m["mae_train_mean"] = float(np.abs(truth[truth >= 0] - train[train >= 0].mean()).mean())
        result = {t: {"acc": m["acc"], "balanced_acc": m["balanced_acc"], "loss": m["loss"], "n": m["n"],
                      "per_class_acc": dict(zip(self.class_names[t], m["per_class_acc"])),
                      **({k: m[k] for k in ("mae", "cs5", "mae_train_mean") if k in m})}
                  for t, m in test.items()}
        self.run.write_json("test_metrics.json", {"run": str(self.run.path), "test": result})
        print("test (best weights): " + " ".join(
            f"{t}_acc={m['acc']:.4f}" + (f" {t}_mae={m['mae']:.2f} {t}_cs5={m['cs5']:.3f} (mae of the train "
                                         f"mean: {m['mae_train_mean']:.2f})" if "mae" in m else "")
            for t, m in test.items()))
        for t, m in test.items():
            if "mae" in m:
                continue
            print(f"  {t}: " + ", ".join(f"{n}={a:.2f}" for n, a in zip(self.class_names[t], m["per_class_acc"])
                                         if not math.isnan(a)))
        return {"run_dir": str(self.run.path), "test": result}


def smooth_years(rows: np.ndarray, sigma: float) -> np.ndarray:
    """Replace one-hot age rows by a Gaussian of width ``sigma`` years around the true age.

    Zero (missing) and soft (pseudo / distilled) rows are left as they are.
    """
    rows = rows.copy()
    hot = (rows.max(1) == 1.0) & (rows.sum(1) == 1.0)
    if hot.any():
        centre = rows[hot].argmax(1)[:, None]
        g = np.exp(-0.5 * ((np.arange(rows.shape[1])[None, :] - centre) / sigma) ** 2)
        rows[hot] = g / g.sum(1, keepdims=True)
    return rows


def all_layers(model):
    """Every layer of a model, nested models' layers included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def cfg_epoch_after(state: dict) -> int:
    """A stopped (early-stopped) run has nothing left to train."""
    return 10**9 if state.get("stopped") else state["epoch"] + 1


def check_finite(history: dict, epoch: int, phase: str, run_path: Path) -> None:
    """Stop on a NaN/inf loss, naming the epoch and the task; last.keras keeps the last good weights."""
    bad = [k for k, v in history.items() if v and not math.isfinite(float(v[-1]))]
    if bad:
        tasks = sorted(k.removesuffix("_prediction_loss") for k in bad if k.endswith("_prediction_loss"))
        what = f"{', '.join(tasks)} loss" if tasks else ", ".join(bad)
        last = run_path / "last.keras"
        where = (f"the last good weights are in {last}" if last.exists()
                 else "no epoch had finished, so no weights were saved")
        raise FloatingPointError(f"epoch {epoch + 1} ({phase}): non-finite {what}; stopped; {where}")


def make_strategy(kind: str):
    """tf.distribute strategy for ``--distribute``: none, mirrored (all local GPUs, else the CPU) or
    multiworker (MultiWorkerMirroredStrategy from TF_CONFIG)."""
    import tensorflow as tf

    if kind in (None, "none"):
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy([d.name for d in gpus] or ["/cpu:0"])
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown --distribute {kind!r}")


def run_folder(cfg: RunConfig, strategy) -> Path:
    """The run folder; non-chief workers of a multi-worker run write to a side folder of it."""
    base = Path(cfg.output_dir) / cfg.script / cfg.run_name
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type not in (None, "chief") and not (
            resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs):
        return base / f"worker-{resolver.task_type}-{resolver.task_id}"
    return base


def train(cfg: RunConfig, resume: bool = False) -> dict:
    """Train one configuration (or continue it from its run folder); returns the run folder and test metrics."""
    return Trainer(cfg).fit(resume)


def load_config(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "config.json").read_text())


def config_from_run(run_dir: str) -> RunConfig:
    """The RunConfig a run folder was started with (for ``--resume``)."""
    data = load_config(run_dir)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kwargs = {k: v for k, v in data.items() if k in fields}
    kwargs["pseudo"] = PseudoConfig(**data["pseudo"])
    run = Path(run_dir).resolve()
    kwargs["output_dir"], kwargs["script"], kwargs["run_name"] = str(run.parent.parent), run.parent.name, run.name
    return RunConfig(**kwargs)
