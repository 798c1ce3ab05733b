"""The training loop: set a run up, train its epochs, validate, checkpoint, test the best weights.

The loop only sequences the parts; each does one job and receives what it needs: ``step.py`` (the one
training step), ``probe.py`` (predictions and per-dataset BatchNorm statistics), ``teacher.py``
(fills for missing tasks), ``schedule.py`` (phases, budget, plateau), ``checkpoints.py``,
``distribution.py`` and ``final_test.py``.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import sys
import time

import numpy as np

from utils.datasets import default_data_dir, parts_digest
from utils.engine.checkpoints import check_finite, restore_checkpoint, save_checkpoint
from utils.engine.config import RunConfig
from utils.engine.data import build_cache, class_counts, load_splits, mae_of_train_mean
from utils.engine.distribution import MultiWorkerEpoch, make_strategy, run_folder
from utils.engine.epochs import EpochData
from utils.engine.final_test import test_best_weights
from utils.engine.heads import flips, make_heads, objectives
from utils.engine.probe import validation_score
from utils.engine.records import epoch_row, log_epoch
from utils.engine.schedule import Budget, PlateauControl, Schedule, cosine_lr
from utils.missing import strategy_for
from utils.pseudo_labels import PseudoConfig

log = logging.getLogger(__name__)


class SeedState:
    """The dropout layers' random generators, which a saved ``.keras`` model reloads at their initial
    value: saved with each checkpoint so that a resumed run draws the masks an uninterrupted one would."""

    def __init__(self, net):
        self.variables = [v for v in net.variables if "seed_generator" in v.path]

    def state_dict(self) -> dict:
        return {f"v{i}": np.asarray(v) for i, v in enumerate(self.variables)}

    def load_state_dict(self, state: dict) -> None:
        for i, v in enumerate(self.variables):
            if f"v{i}" in state:
                v.assign(state[f"v{i}"])


class Trainer:
    """Runs one configuration end to end (see ``utils/engine/__init__.py``)."""

    def __init__(self, cfg: RunConfig):
        self.given = cfg  # never written to; ``self.cfg`` is the resolved copy
        self.cfg = cfg

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, resume: bool = False) -> None:
        import keras

        from models import BACKBONES, ModelSpec, build_net, trunk_layers
        from utils.engine.probe import Probe
        from utils.engine.step import MultiTaskLearner
        from utils.engine.teacher import Teacher
        from utils.run_dir import RunDir, claim_run_folder
        from utils.weighting import make_weighting

        given = self.given
        keras.utils.set_random_seed(given.seed)
        # the policy is process-wide: set it either way so that runs in one process do not leak into each other
        keras.mixed_precision.set_global_policy("mixed_float16" if given.mixed_precision else "float32")
        self.strategy = make_strategy(given.distribute)
        self.multiworker = MultiWorkerEpoch(self.strategy) if given.distribute == "multiworker" else None
        cfg = dataclasses.replace(copy.deepcopy(given), data_dir=given.data_dir or str(default_data_dir()))
        self.splits = load_splits(cfg)
        _, class_names = class_counts(self.splits, cfg)
        self.missing = strategy_for(cfg.pseudo if cfg.mode != "stl" else PseudoConfig(seed=cfg.seed))
        self.heads = make_heads(class_names, cfg.loss_weights, cfg.age_loss, cfg.model)
        self.spec = ModelSpec(cfg.model, {t: h.classes for t, h in self.heads.items()}, cfg.input_size,
                              cfg.is_dropout, cfg.is_bn, cfg.weights_decay, cfg.cross_stitch, cfg.weights,
                              cfg.regularization, cfg.pseudo.ltn_dim if self.missing.model_needs_label_embedding else 0,
                              {t: h.kind.scale for t, h in self.heads.items() if h.kind.regression})
        self.transfer = [t for t in self.heads if self.spec.label_embedding and len(self.heads) > 1]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = dataclasses.replace(
            cfg, input_size=self.spec.input_size, lr=cfg.lr if cfg.lr is not None else BACKBONES[self.spec.backbone].lr,
            run_name=cfg.run_name or (f"{'-'.join(n for n, _ in cfg.datasets)}-{self.spec.backbone}-"
                                      f"{cfg.method_tag()}-{stamp}"))
        self.schedule = Schedule(cfg.mode, len(self.splits), cfg.warmup_epochs, cfg.epoch, cfg.rounds)
        self.budget = Budget(list(self.heads), cfg.batch_size)
        self.cache = build_cache(self.splits, self.spec, cfg)
        self.mae_of_mean = {t: m for t, h in self.heads.items() if h.kind.unit
                            and (m := mae_of_train_mean(self.splits, t, "valid")) is not None}
        with self.strategy.scope():
            self.net = build_net(self.spec)
            shared = [v for layer in trunk_layers(self.net, self.heads) for v in layer.trainable_weights]
            kernels = [v.path for v in shared if v.path.endswith("kernel")]
            self.weighting = make_weighting(cfg.weighting, list(self.heads), [h.weight for h in self.heads.values()],
                                            cfg.weighting_lr, cfg.seed)
            self.learner = MultiTaskLearner(self.net, objectives(self.heads, self.transfer), self.weighting,
                                            {v.path for v in shared}, kernels[-1] if kernels else None)
        self.probe = Probe(self.net, list(self.heads), self.splits, self.spec.input_size, self.spec.channels,
                           self.cache, cfg.seed)
        if cfg.distribute != "none":  # replicas share BatchNorm batch statistics (and so moving averages)
            for layer in self.probe.bn.layers:
                layer.synchronized = True
        folder = run_folder(cfg, self.strategy)
        if not resume and not self.multiworker:  # never reuse a run folder (workers share theirs by design)
            folder = claim_run_folder(folder)
            cfg = dataclasses.replace(cfg, run_name=folder.name)
        self.cfg = cfg
        self.run = RunDir(folder)
        self.teacher = Teacher(self.missing, self.heads, self.splits, self.probe, cfg.teacher_margin,
                               cfg.warmup_epochs, cfg.seed, self.mae_of_mean,
                               self.run.path / "pseudo" if cfg.plot_pseudo else None)
        self.epoch_data = EpochData(cfg, self.splits, self.heads, self.schedule, self.teacher, self.transfer)
        if not resume:
            self.write_config(stamp)
        cosine = cfg.lr_schedule == "cosine"  # no drops; early stopping only when asked for
        self.plateau = PlateauControl(cfg.patience, cfg.early_stopping_patience
                                      or (math.inf if cosine else 2 * cfg.patience),
                                      "min" if cfg.monitor == "val_loss" else "max", factor=1.0 if cosine else 0.1)
        self.frozen, self.lr = None, cfg.lr
        self.parts = {"trainer": self, "plateau": self.plateau, "teacher": self.teacher, "budget": self.budget,
                      "weighting": self.weighting, "batchnorm": self.probe, "seeds": SeedState(self.net)}

    def write_config(self, stamp: str) -> None:
        from utils.run_dir import code_version

        cfg = self.cfg
        self.run.write_json("config.json", {
            **dataclasses.asdict(cfg), "tasks": cfg.tasks, "classes": {t: h.classes for t, h in self.heads.items()},
            "epochs": self.schedule.epochs, "class_names": {t: list(h.names) for t, h in self.heads.items()},
            "model_spec": dataclasses.asdict(self.spec),
            "split_sizes": {n: {s: len(getattr(sp, s)) for s in ("train", "valid", "test")}
                            for (n, _), sp in zip(cfg.datasets, self.splits)},
            "split_digest": {n: {s: parts_digest(getattr(sp, s).paths) for s in ("train", "valid", "test")}
                             for (n, _), sp in zip(cfg.datasets, self.splits)},
            "split_protocol": {n: sp.protocol for (n, _), sp in zip(cfg.datasets, self.splits) if sp.protocol},
            "code": code_version(), "started": stamp})

    # ---------------------------------------------------------------------------- optimiser state
    def compile(self, lr: float) -> None:
        import keras

        with self.strategy.scope():
            self.learner.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=bool(self.cfg.jit))

    def set_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the backbone (two-stage schedule of ``--is_freezing``), then recompile."""
        from models import trunk_layers

        if frozen == self.frozen:
            return
        for layer in trunk_layers(self.net, self.heads):
            layer.trainable = not frozen
        self.frozen = frozen
        self.lr = self.cfg.frozen_lr if frozen else self.cfg.lr
        self.compile(self.lr)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "frozen": bool(self.frozen)}

    def load_state_dict(self, state: dict) -> None:
        self.frozen = None
        self.set_frozen(state["frozen"])
        self.lr = state["lr"]
        self.learner.optimizer.learning_rate.assign(self.lr)

    # ------------------------------------------------------------------------------------ loop
    def fit(self, resume: bool = False, state: dict | None = None) -> dict:
        import tensorflow as tf

        self.setup(resume)
        if state is not None:
            state["run"] = str(self.run.path)
        cfg = self.cfg
        gpus = tf.config.list_physical_devices("GPU")
        log.info("device: %s", f"{len(gpus)} GPU(s)" if gpus else "CPU (no GPU visible to TensorFlow)")
        log.info("run folder: %s", self.run.path.resolve())
        log.info("tasks: %s  datasets: %s", {t: h.classes for t, h in self.heads.items()}, ", ".join(
            f"{sp.train.name} (train {len(sp.train)}, valid {len(sp.valid)}, test {len(sp.test)})"
            for sp in self.splits))
        if cfg.rounds is not None:
            log.info("budget: %d rounds (one pass over every dataset each) = %d epochs", cfg.rounds,
                     self.schedule.epochs)
        start = 0
        if resume:
            last = restore_checkpoint(self.run, self.net, lambda: self.learner.optimizer, self.parts)
            self.run.truncate_metrics(last + 1)
            stopped = self.plateau.wait_stop >= self.plateau.stop_patience
            start = self.schedule.epochs if stopped else last + 1  # an early-stopped run has nothing left
            log.info("resumed after epoch %d (learning rate %.2e)", last + 1, self.lr)
        else:
            self.set_frozen(bool(cfg.is_freezing))
        for epoch in range(start, self.schedule.epochs):
            if self.run_epoch(epoch):
                break
        per_dataset = cfg.mode == "alternating" and cfg.bn_stats == "per_dataset" and any(
            self.schedule.phase(e) != "joint" for e in range(self.schedule.epochs))
        return test_best_weights(self.run, self.net, self.probe, self.heads, self.splits, per_dataset,
                                 dict(self.budget.counts))

    def train_one_epoch(self, paths, targets, epoch: int, callbacks: list) -> dict:
        """One pass of the learner's step over the epoch's rows; the history Keras' ``fit`` returns."""
        import tensorflow as tf

        from utils.pipelines import make_dataset, raise_undecodable

        cfg, spec = self.cfg, self.spec
        flip = flips(self.heads, self.transfer)

        def dataset(batch, shard=None, steps=None):
            ds = make_dataset(paths, targets, batch, spec.input_size, spec.channels, shuffle=True, seed=cfg.seed,
                              augment=cfg.is_augmentation, repeat_epoch=epoch, zoom=cfg.augment_zoom,
                              low_res=cfg.augment_low_res, surround=cfg.augment_surround, cache=self.cache,
                              flip_perms=flip, shard=shard, drop_remainder=shard is not None)
            return ds.take(steps) if steps else ds

        if self.multiworker:
            return self.multiworker(self.learner, dataset, len(paths), cfg.batch_size, epoch)
        try:
            return self.learner.fit(dataset(cfg.batch_size), epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                                    verbose=1 if sys.stdout.isatty() else 0, callbacks=callbacks).history
        except tf.errors.InvalidArgumentError:
            if self.cache is not None:
                raise
            raise_undecodable(paths, [sp.train for sp in self.splits])

    def cosine_steps(self, epoch: int, steps: int):
        """A callback that sets the cosine learning rate before every step of ``epoch`` (``--lr_schedule
        cosine``); the epoch's first value is also the one logged and checkpointed."""
        import keras

        base, epochs, opt = self.cfg.lr, self.schedule.epochs, self.learner.optimizer
        self.lr = cosine_lr(base, epoch / epochs)
        opt.learning_rate.assign(self.lr)
        return keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs=None: opt.learning_rate.assign(
            cosine_lr(base, (epoch + batch / max(steps, 1)) / epochs)))

    def monitored(self, val: dict) -> float:
        if self.cfg.monitor == "val_loss":
            return sum(self.heads[t].weight * m["loss"] for t, m in val.items())
        if self.cfg.monitor == "val_score":
            return validation_score(val, self.heads, self.mae_of_mean)
        return float(np.mean([m["acc"] for m in val.values()]))

    def run_epoch(self, epoch: int) -> bool:
        """Train, evaluate and checkpoint one epoch; returns True when early stopping ends the run."""
        import keras

        cfg, t0 = self.cfg, time.time()
        # TensorFlow is seeded once per run (a per-epoch tf.random.set_seed retraces every tf.function); the
        # data's randomness is seeded per epoch (shuffle, augmentation, flips: pipelines.make_dataset) and the
        # dropout generators are checkpointed, so a resumed run sees the same batches and masks.
        if cfg.is_freezing and epoch == cfg.no_freezing_epoch:
            self.set_frozen(False)
        paths, targets, stats, phase = self.epoch_data(epoch)
        timing = {"seconds_targets": time.time() - t0}
        callbacks = [keras.callbacks.TerminateOnNaN()]
        if cfg.lr_schedule == "cosine":
            callbacks.append(self.cosine_steps(epoch, math.ceil(len(paths) / cfg.batch_size)))
        t1 = time.time()
        hist = self.train_one_epoch(paths, targets, epoch, callbacks)
        check_finite(hist, epoch, phase, self.run.path)
        timing["seconds_fit"], t1 = time.time() - t1, time.time()
        alternated = cfg.mode == "alternating" and self.schedule.phase(epoch) != "joint"
        self.probe.refresh(cfg.bn_stats if alternated else "joint" if cfg.precise_bn else None)
        timing["seconds_bn"], t1 = time.time() - t1, time.time()
        val = self.probe.evaluate([sp.valid for sp in self.splits], self.heads)
        value = self.monitored(val)
        check_finite({"validation loss": [value]}, epoch, phase, self.run.path)
        decide = self.schedule.round_end(epoch)
        is_best, new_lr, stop = self.plateau.step(value, self.lr) if decide else (False, self.lr, False)
        self.teacher.update_gate(val, epoch)
        trained = [t for t in self.heads if np.any(targets[t] != 0)]
        self.weighting.epoch_end({t: float(hist[f"{t}_prediction_loss"][-1]) for t in trained})
        row = epoch_row(epoch, phase, self.schedule.rounds_done(epoch), self.lr, self.frozen, hist, stats,
                        cfg.monitor, value, val, self.budget.add(len(paths), self.epoch_data.tables(epoch)),
                        {t: h.weight for t, h in self.heads.items()}, bool(cfg.regularization or cfg.weights_decay),
                        self.weighting.state())
        for t, m in ((t, m) for t, m in val.items() if "confusion" in m):  # kinds with classes or bins
            self.run.write_confusion(f"epoch_{epoch + 1:03d}_{t}", m["confusion"],
                                     m.get("confusion_names", list(self.heads[t].names)),
                                     f"epoch {epoch + 1} {t} (valid)")
        timing["seconds_eval"] = time.time() - t1
        row.update({k: round(v, 2) for k, v in timing.items()})
        row["seconds"] = round(time.time() - t0, 2)
        log_epoch(epoch, self.schedule.epochs, phase, val, cfg.monitor, value, stats, is_best, row["seconds"])
        if new_lr != self.lr:
            log.info("  learning rate %.2e -> %.2e (no improvement for %d %s)", self.lr, new_lr, cfg.patience,
                     "rounds" if cfg.mode == "alternating" else "epochs")
            self.lr = new_lr
            self.learner.optimizer.learning_rate.assign(new_lr)
        save_checkpoint(self.run, self.net, self.learner.optimizer, epoch, row, is_best, self.parts,
                        cfg.keep_checkpoints)
        if stop:
            log.info("  early stopping after epoch %d: no improvement for %d %s", epoch + 1,
                     self.plateau.stop_patience, "rounds" if cfg.mode == "alternating" else "epochs")
        return stop


def train(cfg: RunConfig, resume: bool = False, state: dict | None = None) -> dict:
    """Train one configuration (or continue it from its run folder); returns the run folder and test metrics.
    ``state`` (optional) receives ``run``, the run folder, as soon as it exists (for a message on Ctrl-C)."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit(resume, state)
    finally:
        if getattr(trainer, "run", None) is not None:
            trainer.run.release()
