"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021, Alg. 1).

The update maximises the worst task's local improvement within a ball around the average gradient
``g0``: ``w* = argmin_{w in simplex} g_w . g0 + sqrt(phi) ||g_w||`` with ``phi = c^2 ||g0||^2``, then
``d = (g0 + sqrt(phi) / ||g_w*|| g_w*) / (1 + c)``. The simplex problem is solved by gradient descent on
softmax logits (the authors use SciPy's SLSQP); absent tasks have zero weight and are not averaged.
"""
from __future__ import annotations

import tensorflow as tf

from utils.weighting import EPS, Weighting


class CAGrad(Weighting):
    per_task_gradients = True
    c = 0.5
    steps = 40

    def shared_gradient(self, grads, losses, present):
        p = tf.cast(present, tf.float32)
        n = tf.maximum(tf.reduce_sum(p), 1.0)
        g = grads * p[:, None]
        g0 = tf.reduce_sum(g, axis=0) / n
        gram = tf.matmul(g, g, transpose_b=True)
        sqrt_phi = self.c * tf.norm(g0)
        g_g0 = tf.linalg.matvec(g, g0)
        logits = tf.zeros_like(p)
        for _ in range(self.steps):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                w = tf.nn.softmax(tf.where(p > 0, logits, -1e9))
                objective = tf.reduce_sum(w * g_g0) + sqrt_phi * tf.sqrt(
                    tf.reduce_sum(w * tf.linalg.matvec(gram, w)) + EPS)
            logits = logits - 1.0 * tape.gradient(objective, logits)
        w = tf.nn.softmax(tf.where(p > 0, logits, -1e9))
        gw = tf.reduce_sum(w[:, None] * g, axis=0)
        d = (g0 + sqrt_phi / (tf.norm(gw) + EPS) * gw) / (1.0 + self.c)
        return d * n  # the same scale as the summed gradient of the other strategies
