"""A Keras training step that lets a ``utils.weighting`` strategy combine the task losses or gradients.

The model stays a plain functional model (what is saved and shipped); only its ``train_step`` is
replaced. The compiled losses still run for logging, so ``<task>_prediction_loss`` and the masked
accuracies in the history mean what they mean without a strategy. Mixed precision and
MultiWorkerMirroredStrategy's explicit step are not combined with strategies (the engine refuses).
"""
from __future__ import annotations

import types

import numpy as np
import tensorflow as tf


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


def install(model, weighting, loss_fns: dict, shared_paths: set, last_shared_path: str | None = None) -> None:
    """Replace ``model.train_step`` with one driven by ``weighting``.

    ``loss_fns``: output key -> masked loss, in the strategy's task order; ``shared_paths``: paths of
    the trunk's variables (what gradient-manipulation strategies act on); ``last_shared_path``: the
    variable GradNorm measures gradient norms on.
    """
    keys = list(loss_fns)

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape(persistent=True) as tape:
            y_pred = self(x, training=True)
            logged = self._compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            losses = [loss_fns[k](y[k], y_pred[k]) for k in keys]
            present = tf.stack([tf.reduce_any(tf.not_equal(y[k], 0.0)) for k in keys])
            reg = tf.add_n(self.losses) if self.losses else tf.constant(0.0)
            if not weighting.per_task_gradients:
                w = weighting.weights(losses, present)
                total = (tf.reduce_sum(w * tf.cast(present, tf.float32) * tf.stack(losses))
                         + weighting.extra_loss(losses, present) + reg)
        self._loss_tracker.update_state(logged, sample_weight=tf.shape(x)[0])
        variables = self.trainable_variables
        if weighting.per_task_gradients:
            shared = [v for v in variables if v.path in shared_paths]
            private = [v for v in variables if v.path not in shared_paths]
            per_task = tf.stack([_flat(tape.gradient(loss, shared), shared) for loss in losses])
            g_shared = _unflat(weighting.shared_gradient(per_task, losses, present), shared)
            g_reg = _zeros_for_none(tape.gradient(reg, shared), shared)
            head_loss = tf.reduce_sum(weighting.base * tf.cast(present, tf.float32) * tf.stack(losses)) + reg
            g_private = _zeros_for_none(tape.gradient(head_loss, private), private)
            by_path = {v.path: g for v, g in zip(shared, [a + b for a, b in zip(g_shared, g_reg)])}
            by_path.update({v.path: g for v, g in zip(private, g_private)})
            grads = [by_path[v.path] for v in variables]
        else:
            extra = weighting.variables()
            all_grads = _zeros_for_none(tape.gradient(total, variables + extra), variables + extra)
            grads = all_grads[:len(variables)]
            for v, g in zip(extra, all_grads[len(variables):]):  # the strategy's own plain SGD
                v.assign_sub(weighting.lr * g)
            if weighting.needs_grad_norms and last_shared_path:
                last = next(v for v in variables if v.path == last_shared_path)
                norms = [tf.norm(_flat([tape.gradient(loss, last)], [last])) for loss in losses]
                weighting.update_from_grad_norms(norms, losses, present)
        del tape
        self.optimizer.apply_gradients(zip(grads, variables))
        if weighting.second_forward:
            after = self(x, training=True)
            weighting.after_step(losses, [loss_fns[k](y[k], after[k]) for k in keys], present)
        return self.compute_metrics(x, y, y_pred)

    model.train_step = types.MethodType(train_step, model)
    model.train_function = None
