"""The one training step: ``MultiTaskLearner.train_step`` serves every path.

The learner wraps the functional network (what is saved and shipped) and owns the step through
Keras' public ``train_step`` override, in the manner of keras-io's knowledge-distillation example:
Keras' ``fit`` runs it on one device or under ``MirroredStrategy``, and the multi-worker loop
(``distribution.py``) runs the same method through ``strategy.run``. Each objective brings its loss and
training metric from its task's kind (``heads.py``); a loss-weighting strategy (``utils/weighting.py``,
``fixed`` included) turns the task losses, or their gradients, into the update.

With the ``fixed`` strategy the arithmetic is exactly that of a model compiled with these losses and
``loss_weights``: each objective's ``w * L`` summed in Keras' flattened (sorted) output order, then the
layer penalties, and the same loss and metric trackers; a run gives the numbers it gave when Keras'
compiled step trained it.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from utils.losses import metric_for


def _flat(grads, variables):
    return tf.concat([tf.reshape(tf.zeros_like(v) if g is None else g, [-1]) for g, v in zip(grads, variables)], 0)


def _unflat(vector, variables):
    out, start = [], 0
    for v in variables:
        n = int(np.prod(v.shape))
        out.append(tf.reshape(vector[start:start + n], v.shape))
        start += n
    return out


def _zeros_for_none(grads, variables):
    return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]


def _replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


class MultiTaskLearner(keras.Model):
    """Trains ``net`` on its objectives (``heads.Objective``) under a weighting strategy.

    ``shared_paths``: the trunk's variables (what gradient-manipulation strategies act on);
    ``last_shared_path``: the kernel GradNorm measures gradient norms on.
    """

    def __init__(self, net, objectives: list, weighting, shared_paths: set, last_shared_path: str | None = None):
        super().__init__(name="learner")
        self.net = net
        self.objectives = sorted(objectives, key=lambda o: o.key)  # Keras' flattened order of a dict of outputs
        self.task_keys = [o.key for o in objectives if o.weighted]  # the strategy's tasks, in its own order
        self.by_key = {o.key: o for o in objectives}
        self.weighting = weighting
        self.shared_paths, self.last_shared_path = set(shared_paths), last_shared_path
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.loss_means = [keras.metrics.Mean(name=f"{o.key}_loss") for o in self.objectives]
        self.task_metrics = [metric_for(o.kind, f"{o.key}_{o.kind.metric}") for o in self.objectives]

    def call(self, x, training=False):
        return self.net(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.loss_means, *self.task_metrics]

    def penalties(self) -> list:
        """The layers' added losses (weight decay, SFSMR / SLRM norms, the Laplacian term), each summed."""
        return [ops.sum(ops.cast(v, "float32")) for v in self.net.losses]

    def combine(self, losses: dict, weights: dict, penalties: list):
        """``sum w L`` over the objectives in their order, then the penalties (Keras' compiled arithmetic)."""
        total = sum(ops.multiply(losses[o.key], weights[o.key]) for o in self.objectives)
        return ops.sum([total, *penalties]) if penalties else total

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The objectives at their base weights plus the penalties: the loss ``evaluate`` and the logs report."""
        losses = {o.key: o.loss(y[o.key], y_pred[o.key]) for o in self.objectives}
        return self.combine(losses, {o.key: o.weight for o in self.objectives}, self.penalties())

    def train_step(self, data):
        x, y = data[0], data[1]
        strategy = self.weighting
        keys = self.task_keys
        with tf.GradientTape(persistent=strategy.per_task_gradients or strategy.needs_grad_norms) as tape:
            pred = self.net(x, training=True)
            losses = {o.key: o.loss(y[o.key], pred[o.key]) for o in self.objectives}
            penalties = self.penalties()
            logged = self.combine(losses, {o.key: o.weight for o in self.objectives}, penalties)
            task_losses = [losses[k] for k in keys]
            present = tf.stack([ops.any(ops.not_equal(y[k], 0.0)) for k in keys])
            if strategy.per_task_gradients:  # the heads' own objective at the base weights (inside the tape)
                p = tf.cast(present, tf.float32)
                weights = {o.key: o.weight for o in self.objectives}
                weights.update({k: strategy.base[i] * p[i] for i, k in enumerate(keys)})
                heads_total = self.combine(losses, weights, penalties)
                penalty = ops.sum(penalties) if penalties else None
            else:
                w = strategy.weights(task_losses, present)
                p = tf.cast(present, tf.float32)
                weights = {o.key: o.weight for o in self.objectives}
                weights.update({k: w[i] * p[i] for i, k in enumerate(keys)})
                total = self.combine(losses, weights, penalties)
                extra = strategy.extra_loss(task_losses, present)
                if extra is not None:
                    total = total + extra
                total = total / _replicas() if _replicas() > 1 else total  # the all-reduce sums replicas
        variables = self.net.trainable_variables
        if strategy.per_task_gradients:
            grads = self.manipulated_gradients(tape, task_losses, present, penalty, heads_total)
        else:
            extra_vars = strategy.variables()
            all_grads = _zeros_for_none(tape.gradient(self.optimizer.scale_loss(total), variables + extra_vars),
                                        variables + extra_vars)
            grads = all_grads[:len(variables)]
            for v, g in zip(extra_vars, all_grads[len(variables):]):  # the strategy's own plain SGD
                v.assign_sub(strategy.lr * g)
            if strategy.needs_grad_norms and self.last_shared_path:
                last = next(v for v in variables if v.path == self.last_shared_path)
                norms = [tf.norm(_flat([tape.gradient(loss, last)], [last])) for loss in task_losses]
                strategy.update_from_grad_norms(norms, task_losses, present)
        del tape
        self.optimizer.apply_gradients(zip(grads, variables))
        if strategy.second_forward:
            after = self.net(x, training=True)
            strategy.after_step(task_losses, [self.by_key[k].loss(y[k], after[k]) for k in keys], present)
        self.loss_tracker.update_state(logged, sample_weight=tf.shape(x)[0])
        for o, mean, metric in zip(self.objectives, self.loss_means, self.task_metrics):
            mean.update_state(losses[o.key], sample_weight=pred[o.key].shape[0])
            metric.update_state(y[o.key], pred[o.key])
        return {m.name: m.result() for m in self.metrics}

    def manipulated_gradients(self, tape, task_losses, present, penalty, heads_total) -> list:
        """PCGrad / MGDA / CAGrad: the strategy turns the per-task trunk gradients into one, plus the
        penalties' gradient; the heads (and any auxiliary objective) get the gradients of ``heads_total``,
        their losses at the base weights. Every loss was recorded on ``tape``."""
        strategy = self.weighting
        variables = self.net.trainable_variables
        shared = [v for v in variables if v.path in self.shared_paths]
        private = [v for v in variables if v.path not in self.shared_paths]
        per_task = tf.stack([_flat(tape.gradient(loss, shared), shared) for loss in task_losses])
        g_shared = _unflat(strategy.shared_gradient(per_task, task_losses, present), shared)
        g_reg = _zeros_for_none(tape.gradient(penalty, shared) if penalty is not None else [None] * len(shared),
                                shared)
        g_private = _zeros_for_none(tape.gradient(heads_total, private), private)
        by_path = {v.path: g for v, g in zip(shared, [a + b for a, b in zip(g_shared, g_reg)])}
        by_path.update({v.path: g for v, g in zip(private, g_private)})
        n = _replicas()  # the all-reduce sums replicas
        return [by_path[v.path] / n if n > 1 else by_path[v.path] for v in variables]
