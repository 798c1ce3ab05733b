"""RLW: random loss weighting (Lin, Ye, Xu, Shi, Zhang, "Reasonable Effectiveness of Random Weighting: A
Litmus Test for Multi-Task Learning", TMLR 2022, sec. 3): every step draws ``z ~ N(0, I)`` and weighs the
task losses with ``softmax(z)``, here over the tasks present in the batch and times their number, so
that a task's expected weight is 1 as under fixed equal weights (the paper's weights sum to 1). The
generator is seeded from the run's seed and its state is checkpointed, so a resumed run draws on.
"""
from __future__ import annotations

import tensorflow as tf

from utils.weighting import EPS, Weighting


class RLW(Weighting):
    def __init__(self, tasks, base, lr=0.025, seed: int = 1, **kw):
        super().__init__(tasks, base, lr)
        self.rng = tf.random.Generator.from_seed(seed)
        self.last = tf.Variable(tf.ones(self.n), trainable=False, name="rlw_last_weights")

    def weights(self, losses, present):
        p = tf.cast(present, tf.float32)
        z = self.rng.normal([self.n])
        e = tf.exp(z - tf.reduce_max(z)) * p
        w = tf.reduce_sum(p) * e / tf.maximum(tf.reduce_sum(e), EPS)
        self.last.assign(w)
        return w

    def current_weights(self):
        return self.last

    def _state_variables(self) -> list:
        return [self.rng.state, self.last]
