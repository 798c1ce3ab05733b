"""The training loop: set up a run, train its epochs, evaluate, checkpoint, test the best weights."""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import sys
import time

import numpy as np

from utils.datasets import default_data_dir
from utils.engine.batchnorm import BatchNormStats, dataset_stats, own_statistics, update_dataset_stats
from utils.engine.checkpoints import check_finite, restore_checkpoint, save_checkpoint
from utils.engine.config import RunConfig, build_cache, class_counts, load_splits, mae_of_train_mean
from utils.engine.distribution import DistributedEpoch, make_strategy, run_folder
from utils.engine.final_test import test_best_weights
from utils.engine.schedule import Budget, PlateauControl, Schedule, cosine_lr
from utils.engine.teacher import Teacher
from utils.kinds import KINDS, error_metrics, kind_of
from utils.missing import strategy_for
from utils.pseudo_labels import PseudoConfig
from utils.targets import smooth_years
from utils.tasks import flip_permutations

log = logging.getLogger(__name__)

PREDICT_BATCH = 256  # images per inference batch (validation, testing, the teacher)


class Trainer:
    """Runs one configuration end to end (see ``utils/engine/__init__.py``)."""

    checkpoint = save_checkpoint  # (epoch, row, is_best, stop): engine/checkpoints.py
    finish = test_best_weights  # () -> {"run_dir", "test"}: engine/final_test.py

    def __init__(self, cfg: RunConfig):
        self.given = cfg  # never written to; ``self.cfg`` is the resolved copy
        self.cfg = cfg

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, resume: bool = False) -> None:
        import keras

        from models import ModelSpec, build_net, feature_model
        from utils.run_dir import RunDir, claim_run_folder

        given = self.given
        keras.utils.set_random_seed(given.seed)
        # the policy is process-wide: set it either way so that runs in one process do not leak into each other
        keras.mixed_precision.set_global_policy("mixed_float16" if given.mixed_precision else "float32")
        self.strategy = make_strategy(given.distribute)
        self.multiworker = given.distribute == "multiworker"
        cfg = dataclasses.replace(copy.deepcopy(given), data_dir=given.data_dir or str(default_data_dir()))
        self.splits = load_splits(cfg)
        self.classes, self.class_names = class_counts(self.splits, cfg)  # head outputs, their names
        self.missing = strategy_for(cfg.pseudo if cfg.mode != "stl" else PseudoConfig(seed=cfg.seed))
        self.kinds = {t: kind_of(names).name for t, names in self.class_names.items()}  # utils/kinds.py
        self.widths = {t: KINDS[self.kinds[t]].width(c) for t, c in self.classes.items()}  # target rows
        self.flip_perms = flip_permutations(self.class_names)
        self.spec = ModelSpec(cfg.model, self.classes, cfg.input_size, cfg.is_dropout, cfg.is_bn,
                              cfg.weights_decay, cfg.cross_stitch, cfg.weights, cfg.regularization,
                              cfg.pseudo.ltn_dim if self.missing.model_needs_label_embedding else 0,
                              tuple(t for t, k in self.kinds.items() if KINDS[k].regression))
        self.ltn = [t for t in self.classes if self.spec.label_embedding and len(self.classes) > 1]
        self.flip_perms.update({f"{t}_ltn": self.flip_perms[t] for t in self.ltn if t in self.flip_perms})
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = dataclasses.replace(
            cfg, input_size=self.spec.input_size,
            lr=cfg.lr if cfg.lr is not None else (1e-4 if self.spec.backbone == "vggFace" else 1e-3),
            run_name=cfg.run_name or (f"{'-'.join(n for n, _ in cfg.datasets)}-{self.spec.backbone}-"
                                      f"{cfg.method_tag()}-{stamp}"))
        self.schedule = Schedule(cfg.mode, len(self.splits), cfg.warmup_epochs, cfg.epoch, cfg.rounds)
        self.budget = Budget(list(self.classes), cfg.batch_size)
        with self.strategy.scope():
            self.model = build_net(self.spec)
            # features, logits and probabilities of every task, on the model's own variables: one compiled
            # forward serves validation, testing and the teacher
            self.probe = feature_model(self.model, list(self.classes))
        self.bn = BatchNormStats(self.model)
        if cfg.distribute != "none":  # replicas share BatchNorm batch statistics (and so moving averages)
            for layer in self.bn.layers:
                layer.synchronized = True
        self.bn_dataset = None  # per-dataset BatchNorm statistics, when in use
        self.teacher = Teacher(self)
        self.distributed_epoch = DistributedEpoch(self)
        self.cache = build_cache(self.splits, self.spec, cfg)
        self.mae_of_mean = self.validation_mae_of_mean()
        folder = run_folder(cfg, self.strategy)
        if not resume and not self.multiworker:  # never reuse a run folder (workers share theirs by design)
            folder = claim_run_folder(folder)
            cfg = dataclasses.replace(cfg, run_name=folder.name)
        self.cfg = cfg
        self.run = RunDir(folder)
        if not resume:
            self.write_config(stamp)
        cosine = cfg.lr_schedule == "cosine"  # no drops; early stopping only when asked for
        self.plateau = PlateauControl(cfg.patience, cfg.early_stopping_patience
                                      or (math.inf if cosine else 2 * cfg.patience),
                                      "min" if cfg.monitor == "val_loss" else "max", factor=1.0 if cosine else 0.1)
        self.frozen = None
        self.lr = cfg.lr

    def write_config(self, stamp: str) -> None:
        cfg = self.cfg
        self.run.write_json("config.json", {
            **dataclasses.asdict(cfg), "tasks": cfg.tasks, "classes": self.classes, "epochs": self.schedule.epochs,
            "class_names": self.class_names, "model_spec": dataclasses.asdict(self.spec),
            "split_sizes": {n: {s: len(getattr(sp, s)) for s in ("train", "valid", "test")}
                            for (n, _), sp in zip(cfg.datasets, self.splits)},
            "split_protocol": {n: sp.protocol for (n, _), sp in zip(cfg.datasets, self.splits) if sp.protocol},
            "started": stamp})

    def validation_mae_of_mean(self) -> dict:
        """Per task in years or degrees: validation MAE of always predicting the training mean (chance level)."""
        maes = {t: mae_of_train_mean(self.splits, t, "valid") for t, k in self.kinds.items() if KINDS[k].unit}
        return {t: v for t, v in maes.items() if v is not None}

    def compile(self, lr: float) -> None:
        import keras

        from utils.losses import MaskedAccuracy, MaskedAngleError

        keys = [f"{t}_prediction" for t in self.classes] + [f"{t}_ltn_prediction" for t in self.ltn]
        with self.strategy.scope():
            self.model.compile(
                optimizer=keras.optimizers.Adam(lr),
                loss={**{f"{t}_prediction": self.task_loss(t) for t in self.classes},
                      **{f"{t}_ltn_prediction": self.task_loss(t) for t in self.ltn}},  # true labels only
                loss_weights={**{f"{t}_prediction": float(self.cfg.loss_weights.get(t, 1.0)) for t in self.classes},
                              **{f"{t}_ltn_prediction": 1.0 for t in self.ltn}},
                metrics={k: [MaskedAngleError() if KINDS[self.kinds[k.split("_")[0]]].metric == "mae"
                             else MaskedAccuracy(name="acc")] for k in keys},
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
        """Masked CE; the angle L1 for degrees; the expected-value L1 for SSR-Net / ``--age_loss l1``."""
        from utils.losses import LOSSES

        if KINDS[self.kinds[task]].loss != "ce":
            return LOSSES[KINDS[self.kinds[task]].loss]
        if self.spec.backbone == "ssrnet":
            return LOSSES["l1"]
        if self.kinds[task] == "years" and self.cfg.age_loss == "l1":
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

    # ------------------------------------------------------------------------------ epoch data
    def trained_tables(self, epoch: int) -> list:
        phase = self.schedule.phase(epoch)
        return [sp.train for sp in self.splits] if phase == "joint" else [self.splits[phase].train]

    def epoch_data(self, epoch: int):
        """(paths, targets, stats, phase name) for one epoch."""
        from utils.pipelines import alternating_arrays, joint_arrays, stl_arrays, true_targets

        ph = self.schedule.phase(epoch)
        trains = [sp.train for sp in self.splits]
        if self.cfg.mode == "stl":
            paths, targets = stl_arrays(trains[0], self.widths)
            stats, name = {}, trains[0].name
        elif ph == "joint":
            fills, stats = self.teacher.fills_for(trains, epoch)
            (paths, targets), name = joint_arrays(trains, self.widths, fills), "joint"
        else:
            fills, stats = self.teacher.fills_for([trains[ph]], epoch)
            task_fills = {t: rows for (_, t), rows in fills.items()}
            (paths, targets), name = alternating_arrays(trains[ph], self.widths, task_fills), trains[ph].name
        if self.ltn:  # the label transfer network learns from true labels only
            true = joint_arrays(trains, self.widths)[1] if ph == "joint" else true_targets(trains[ph], self.widths)
            targets.update({f"{t}_ltn": true[t] for t in self.ltn})
        if self.cfg.age_sigma > 0 and self.kinds.get("age") == "years":
            targets["age"] = smooth_years(targets["age"], self.cfg.age_sigma)
        return paths, targets, stats, name

    def cosine_steps(self, epoch: int, steps: int):
        """A callback that sets the cosine learning rate before every step of ``epoch`` (``--lr_schedule
        cosine``); the epoch's first value is also the one logged and checkpointed."""
        import keras

        base, epochs, opt = self.cfg.lr, self.schedule.epochs, self.model.optimizer
        self.lr = cosine_lr(base, epoch / epochs)
        opt.learning_rate.assign(self.lr)
        return keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs=None: opt.learning_rate.assign(
            cosine_lr(base, (epoch + batch / max(steps, 1)) / epochs)))

    # ------------------------------------------------------------------------------ evaluation
    def outputs(self, table, mirrored: bool = False) -> dict:
        """The probe's features, logits and probabilities on ``table``, under its dataset's BatchNorm
        statistics (call inside ``own_statistics``, which gives the model its own back); ``mirrored``: also
        the probabilities on the mirror images, as ``mirrored_<key>`` (angle pseudo labels)."""
        import tensorflow as tf

        from utils.evaluation import predict
        from utils.pipelines import image_dataset

        stats = dataset_stats(self, table)
        if stats is not None:
            self.bn.set(stats)
        ds = image_dataset(table.paths, PREDICT_BATCH, self.spec.input_size, self.spec.channels, self.cache)
        out = predict(self.probe, ds)
        if mirrored:
            flipped = predict(self.probe, ds.map(lambda x: tf.reverse(x, axis=[2])))
            out.update({f"mirrored_{k}": v for k, v in flipped.items() if k.endswith("_probs")})
        return out

    def evaluate(self, part: str) -> dict:
        from utils.evaluation import task_metrics
        from utils.losses import LOSSES

        tables = [getattr(sp, part) for sp in self.splits]
        with own_statistics(self):
            preds = [{t: out[f"{t}_probs"] for t in self.classes} for out in map(self.outputs, tables)]
        metrics = {t: task_metrics(tables, preds, t, c, self.kinds[t]) for t, c in self.classes.items()}
        metrics = {t: m for t, m in metrics.items() if m is not None}
        for t, m in metrics.items():  # validation loss = the loss the task is trained with
            if self.task_loss(t) is LOSSES["l1"]:
                m["loss"] = m["expectation_l1"]
        return metrics

    def monitored(self, val: dict) -> float:
        if self.cfg.monitor == "val_loss":
            return sum(self.cfg.loss_weights.get(t, 1.0) * m["loss"] for t, m in val.items())
        return float(np.mean([m["acc"] for m in val.values()]))

    # ------------------------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> dict:
        import tensorflow as tf

        self.setup(resume)
        cfg = self.cfg
        gpus = tf.config.list_physical_devices("GPU")
        log.info("device: %s", f"{len(gpus)} GPU(s)" if gpus else "CPU (no GPU visible to TensorFlow)")
        log.info("run folder: %s", self.run.path.resolve())
        log.info("tasks: %s  datasets: %s", self.classes, ", ".join(
            f"{sp.train.name} (train {len(sp.train)}, valid {len(sp.valid)}, test {len(sp.test)})"
            for sp in self.splits))
        if cfg.rounds is not None:
            log.info("budget: %d rounds (one pass over every dataset each) = %d epochs", cfg.rounds,
                     self.schedule.epochs)
        start = restore_checkpoint(self) if resume else 0
        if not resume:
            self.set_frozen(bool(cfg.is_freezing))
        for epoch in range(start, self.schedule.epochs):
            if self.run_epoch(epoch):
                break
        return self.finish()

    def run_epoch(self, epoch: int) -> bool:
        """Train, evaluate and checkpoint one epoch; returns True when early stopping ends the run."""
        import keras
        import tensorflow as tf

        from utils.pipelines import make_dataset, raise_undecodable

        cfg, t0 = self.cfg, time.time()
        # No per-epoch tf.random.set_seed: it makes every tf.function retrace (train step, forward, BN
        # estimation; measured 1.5-2 s per epoch at 32 px). The data's randomness is seeded per epoch
        # (shuffle, augmentation, flips: pipelines.make_dataset), so a resumed run sees the same batches.
        # Dropout's generator state is not in the checkpoint (Keras saves it at its initial value): with
        # --is_dropout a resumed run draws other masks than an uninterrupted one (as it did before).
        if cfg.is_freezing and epoch == cfg.no_freezing_epoch:
            self.set_frozen(False)
        paths, targets, stats, phase = self.epoch_data(epoch)
        timing = {"seconds_targets": time.time() - t0}
        callbacks = [keras.callbacks.TerminateOnNaN()]
        if cfg.lr_schedule == "cosine":
            callbacks.append(self.cosine_steps(epoch, math.ceil(len(paths) / cfg.batch_size)))
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
                                      callbacks=callbacks).history
            except tf.errors.InvalidArgumentError:
                if self.cache is not None:
                    raise
                raise_undecodable(paths)
        check_finite(hist, epoch, phase, self.run.path)
        timing["seconds_fit"], t1 = time.time() - t1, time.time()
        if cfg.mode == "alternating":
            update_dataset_stats(self, epoch)
        timing["seconds_bn"], t1 = time.time() - t1, time.time()
        val = self.evaluate("valid")
        value = self.monitored(val)
        check_finite({"validation loss": [value]}, epoch, phase, self.run.path)
        decide = self.schedule.round_end(epoch)
        is_best, new_lr, stop = self.plateau.step(value, self.lr) if decide else (False, self.lr, False)
        self.teacher.update_gate(val, epoch)
        row = {"epoch": epoch + 1, "phase": phase, "rounds": round(self.schedule.rounds_done(epoch), 3),
               "lr": self.lr, "frozen": int(bool(self.frozen)), "seconds": 0.0,
               **{f"train_{k}": float(v[-1]) for k, v in hist.items()}, **stats, cfg.monitor: value,
               **self.budget.add(len(paths), self.trained_tables(epoch))}
        task_part = sum(float(cfg.loss_weights.get(t, 1.0)) * float(hist[f"{t}_prediction_loss"][-1])
                        for t in self.classes if f"{t}_prediction_loss" in hist)
        if "loss" in hist and (cfg.regularization or cfg.weights_decay):  # what the penalties add to the loss
            row["train_penalty"] = float(hist["loss"][-1]) - task_part
            row["train_penalty_share"] = row["train_penalty"] / max(float(hist["loss"][-1]), 1e-12)
        if getattr(self, "weighting", None) is not None:
            self.weighting.epoch_end({t: float(hist[f"{t}_prediction_loss"][-1]) for t in self.classes
                                      if f"{t}_prediction_loss" in hist})
            row.update({f"weighting_{k}": v for k, v in self.weighting.state().items()})
        for t, m in val.items():
            row[f"val_{t}_acc"], row[f"val_{t}_bacc"], row[f"val_{t}_loss"] = m["acc"], m["balanced_acc"], m["loss"]
            row.update({f"val_{t}_{k}": v for k, v in error_metrics(m).items()})
            self.run.write_confusion(f"epoch_{epoch + 1:03d}_{t}", m["confusion"],
                                     m.get("confusion_names", self.class_names[t]), f"epoch {epoch + 1} {t} (valid)")
        timing["seconds_eval"] = time.time() - t1
        row.update({k: round(v, 2) for k, v in timing.items()})
        row["seconds"] = round(time.time() - t0, 2)
        log.info("epoch %d/%d [%s] %s %s=%.4f%s%s (%.1fs)", epoch + 1, self.schedule.epochs, phase,
                 " ".join(f"val_{t}_acc={m['acc']:.4f}" + (f" val_{t}_mae={m['mae']:.2f}" if "mae" in m else "")
                          for t, m in val.items()), cfg.monitor, value,
                 "".join(f" {k}={v:.3f}" for k, v in stats.items()
                         if isinstance(v, float) and not k.startswith("seconds")),
                 " *" if is_best else "", row["seconds"])
        if new_lr != self.lr:
            log.info("  learning rate %.2e -> %.2e (no improvement for %d %s)", self.lr, new_lr, cfg.patience,
                     "rounds" if cfg.mode == "alternating" else "epochs")
            self.lr = new_lr
            self.model.optimizer.learning_rate.assign(new_lr)
        self.checkpoint(epoch, row, is_best, stop)
        if stop:
            log.info("  early stopping after epoch %d: no improvement for %d %s", epoch + 1,
                     self.plateau.stop_patience, "rounds" if cfg.mode == "alternating" else "epochs")
        return stop

def train(cfg: RunConfig, resume: bool = False) -> dict:
    """Train one configuration (or continue it from its run folder); returns the run folder and test metrics."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit(resume)
    finally:
        if getattr(trainer, "run", None) is not None:
            trainer.run.release()
