"""tf.distribute: the strategy for ``--distribute``, the run folder of each worker, and the multi-worker
epoch loop (Keras 3's ``fit`` does not run under MultiWorkerMirroredStrategy, keras-team/keras#20585;
the loop runs the learner's own step)."""
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


class MultiWorkerEpoch:
    """One epoch under MultiWorkerMirroredStrategy: the learner's own ``train_step`` (``step.py``) through
    ``strategy.run``, so each task gets its kind's loss exactly as in single-device training.

    Every worker shuffles with the same seed, keeps its own shard, and runs the same number of steps
    (so the gradient all-reduce never waits for a worker that ran out of data). ``--batch_size`` is
    the global batch.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self._step, self._for = None, None

    def __call__(self, learner, make_dataset, n_rows: int, batch_size: int, epoch: int) -> dict:
        """Train one epoch; ``make_dataset(per_replica_batch, shard, steps)`` builds a worker's input.
        Returns the history Keras' ``fit`` would (one value per metric)."""
        import tensorflow as tf

        strategy = self.strategy
        n_rep = strategy.num_replicas_in_sync
        per_replica = max(1, batch_size // n_rep)
        steps = n_rows // (per_replica * n_rep)
        if steps == 0:
            raise DataError(f"epoch {epoch + 1}: {n_rows} samples are fewer than one global batch")
        if self._for is not learner.optimizer:  # a recompile (freezing) makes a new optimizer: trace again
            self._step = tf.function(lambda x, y: strategy.run(learner.train_step, args=((x, y),)))
            self._for = learner.optimizer
        for m in learner.metrics:
            m.reset_state()
        ds = strategy.distribute_datasets_from_function(
            lambda ctx: make_dataset(per_replica, (ctx.num_input_pipelines, ctx.input_pipeline_id), steps))
        for x, y in ds:
            self._step(x, y)
        return {m.name: [float(m.result())] for m in learner.metrics}
