"""tf.distribute: the strategy for ``--distribute``, the run folder of each worker, and the explicit
multi-worker training step (Keras 3's ``fit`` does not run under MultiWorkerMirroredStrategy,
keras-team/keras#20585)."""
from __future__ import annotations

from pathlib import Path

from utils.datasets import DataError


def make_strategy(kind: str):
    """none, mirrored (all local GPUs, else the CPU) or multiworker (MultiWorkerMirroredStrategy from TF_CONFIG)."""
    import tensorflow as tf

    if kind in (None, "none"):
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy([d.name for d in gpus] or ["/cpu:0"])
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown --distribute {kind!r}")


def run_folder(cfg, strategy) -> Path:
    """The run folder; non-chief workers of a multi-worker run write to a side folder of it."""
    base = Path(cfg.output_dir) / cfg.script / cfg.run_name
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type not in (None, "chief") and not (
            resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs):
        return base / f"worker-{resolver.task_type}-{resolver.task_id}"
    return base


class DistributedEpoch:
    """One epoch under MultiWorkerMirroredStrategy with an explicit ``strategy.run`` step.

    Every worker shuffles with the same seed, keeps its own shard, and runs the same number of steps
    (so the gradient all-reduce never waits for a worker that ran out of data). ``--batch_size`` is
    the global batch. The loss is the compiled one: weighted masked cross-entropies + layer losses.
    """

    def __init__(self, trainer):
        self.t = trainer
        self._step = self._step_for = None

    def build_step(self, weights: dict):
        import tensorflow as tf

        from utils.losses import masked_cce

        model, strategy = self.t.model, self.t.strategy
        n_rep = strategy.num_replicas_in_sync

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                task_loss = {t: masked_cce(y[f"{t}_prediction"], pred[f"{t}_prediction"]) for t in weights}
                loss = tf.add_n([weights[t] * v for t, v in task_loss.items()] + list(model.losses))
                scaled = loss / n_rep  # the all-reduce sums replica gradients
            grads = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            labelled = {t: tf.reduce_any(y[f"{t}_prediction"] != 0, -1) for t in weights}
            hits = {t: tf.reduce_sum(tf.cast(tf.logical_and(
                labelled[t], tf.argmax(y[f"{t}_prediction"], -1) == tf.argmax(pred[f"{t}_prediction"], -1)),
                tf.float32)) for t in weights}
            counts = {t: tf.reduce_sum(tf.cast(labelled[t], tf.float32)) for t in weights}
            return loss, task_loss, hits, counts

        @tf.function
        def step(x, y):
            out = strategy.run(replica_step, args=(x, y))
            return tf.nest.map_structure(lambda v: strategy.reduce("SUM", v, axis=None), out)

        return step

    def __call__(self, paths, targets, epoch: int) -> dict:
        from utils.pipelines import make_dataset

        t = self.t
        cfg, strategy = t.cfg, t.strategy
        n_rep = strategy.num_replicas_in_sync
        per_replica = max(1, cfg.batch_size // n_rep)
        steps = len(paths) // (per_replica * n_rep)
        if steps == 0:
            raise DataError(f"epoch {epoch + 1}: {len(paths)} samples are fewer than one global batch")

        def dataset_fn(ctx):
            return make_dataset(paths, targets, per_replica, t.spec.input_size, t.spec.channels, shuffle=True,
                                seed=cfg.seed, augment=cfg.is_augmentation, repeat_epoch=epoch, cache=t.cache,
                                shard=(ctx.num_input_pipelines, ctx.input_pipeline_id), drop_remainder=True,
                                flip_perms=t.flip_perms).take(steps)

        weights = {task: float(cfg.loss_weights.get(task, 1.0)) for task in t.classes}
        if self._step_for is not t.model.optimizer:  # a recompile (freezing) makes a new optimizer
            self._step, self._step_for = self.build_step(weights), t.model.optimizer
        total, task_sums = 0.0, {k: 0.0 for k in weights}
        hits, counts = {k: 0.0 for k in weights}, {k: 0.0 for k in weights}
        for x, y in strategy.distribute_datasets_from_function(dataset_fn):
            loss, task_loss, h, c = self._step(x, y)
            total += float(loss) / n_rep
            for k in weights:
                task_sums[k] += float(task_loss[k]) / n_rep
                hits[k] += float(h[k])
                counts[k] += float(c[k])
        hist = {"loss": [total / steps]}
        for k in weights:
            hist[f"{k}_prediction_loss"] = [task_sums[k] / steps]
            hist[f"{k}_prediction_acc"] = [hits[k] / max(counts[k], 1.0)]
        return hist
