"""Loss-weighting strategies for multi-task training with missing labels, looked up by name.

Every strategy sees, per batch, each task's masked loss ``L_t`` and whether the batch labels the task
at all (``present_t``). A task without a labelled row contributes neither loss nor gradient and does
not take part in the strategy's update: its weight is left as it was, it is not projected against,
and it is not a vertex of MGDA's convex hull. Two families (as in LibMTL):

* loss weighting: ``weights(L, present)`` gives ``w_t`` and the step minimises ``sum_t w_t L_t``
  (fixed, uncertainty, DWA, GradNorm, FAMO);
* gradient manipulation: ``shared_gradient(G, L, present)`` turns the per-task gradients ``G``
  (tasks x shared parameters) into one gradient for the shared trunk; task heads get their own
  loss's gradient (PCGrad, MGDA).

``fixed`` (the scripts' ``--*_loss_weights``) is the base class: an ordinary strategy that the training
step (``utils/engine/step.py``) drives like any other. A strategy's own parameters and history are its
state (``state_dict`` / ``load_state_dict``), saved with every checkpoint, so a resumed run continues
them. Adding a strategy: a class here (or in its own file) and one line in
``utils.registries.WEIGHTINGS``.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

EPS = 1e-8


class Weighting:
    """Fixed weights (the scripts' ``--E_loss_weights`` etc.)."""

    per_task_gradients = False
    needs_grad_norms = False  # GradNorm: norms of each task's gradient on the last shared layer
    second_forward = False  # FAMO: the losses after the step, on the same batch

    def __init__(self, tasks: list, base: list, lr: float = 0.025, **_):
        self.tasks, self.lr = list(tasks), float(lr)
        self.base = tf.constant(base, tf.float32)
        self.n = len(tasks)

    def variables(self) -> list:
        """Trainable variables the step differentiates (updated by the strategy's own SGD)."""
        return []

    def weights(self, losses, present):
        return self.base

    def extra_loss(self, losses, present):
        """A term added to the weighted loss (uncertainty weighting's regulariser), or None."""
        return None

    def shared_gradient(self, grads, losses, present):
        raise NotImplementedError

    def after_step(self, losses_before, losses_after, present) -> None:
        """FAMO's weight update (called with the same batch's losses after the parameter step)."""

    def update_from_grad_norms(self, norms, losses, present) -> None:
        """GradNorm's weight update."""

    def epoch_end(self, mean_losses: dict) -> None:
        """DWA's weight update from the epoch's mean training losses of the tasks the epoch trained."""

    def state(self) -> dict:
        """The weights to log in metrics.csv."""
        return {f"weight_{t}": float(w) for t, w in zip(self.tasks, np.asarray(self.current_weights()))}

    def current_weights(self):
        return self.base

    # state that a checkpoint saves: every tf.Variable of the strategy, plus ``history`` where one is kept
    def state_dict(self) -> dict:
        out = {f"var_{i}": np.asarray(v) for i, v in enumerate(self._state_variables())}
        if hasattr(self, "history"):
            out["history"] = {t: list(map(float, h)) for t, h in self.history.items()}
        return out

    def load_state_dict(self, state: dict) -> None:
        for i, v in enumerate(self._state_variables()):
            if f"var_{i}" in state:
                v.assign(state[f"var_{i}"])
        if "history" in state:
            self.history = {t: list(h) for t, h in state["history"].items()}

    def _state_variables(self) -> list:
        return [v for v in vars(self).values() if isinstance(v, tf.Variable)]


class Uncertainty(Weighting):
    """Homoscedastic uncertainty (Kendall, Gal, Cipolla, CVPR 2018, eq. 10 for classification):
    ``sum_t exp(-s_t) L_t + s_t / 2`` with learned ``s_t = log sigma_t^2``."""

    def __init__(self, tasks, base, lr=0.025, **kw):
        super().__init__(tasks, base, lr)
        self.log_var = tf.Variable(tf.zeros(self.n), name="uncertainty_log_var")

    def variables(self):
        return [self.log_var]

    def weights(self, losses, present):
        return tf.exp(-self.log_var)

    def extra_loss(self, losses, present):
        return tf.reduce_sum(tf.cast(present, tf.float32) * self.log_var) / 2.0

    def current_weights(self):
        return tf.exp(-self.log_var)


class DWA(Weighting):
    """Dynamic weight average (Liu, Johns, Davison, CVPR 2019, eq. 7): ``w_t = T softmax(r_t / temp)``
    with ``r_t = L_t(e-1) / L_t(e-2)`` from the mean training losses of the last two epochs that trained
    the task. In a step, the weights of the tasks present in the batch are rescaled to sum to their
    number: an alternating epoch that trains one task gives it weight 1, not its share of a softmax over
    tasks it does not see (that share, 0.76 for two tasks, silently lowered the learning rate)."""

    def __init__(self, tasks, base, lr=0.025, temperature: float = 2.0, **kw):
        super().__init__(tasks, base, lr)
        self.temperature = temperature
        self.history = {t: [] for t in self.tasks}  # mean training loss of each epoch that trained the task
        self.w = tf.Variable(tf.ones(self.n), trainable=False, name="dwa_weights")

    def weights(self, losses, present):
        p = tf.cast(present, tf.float32)
        return self.w * tf.reduce_sum(p) / tf.maximum(tf.reduce_sum(self.w * p), EPS)

    def epoch_end(self, mean_losses):
        for t in self.tasks:
            if t in mean_losses and np.isfinite(mean_losses[t]):
                self.history[t].append(float(mean_losses[t]))
        r = np.array([h[-1] / max(h[-2], EPS) if len(h) >= 2 and h[-2] > 0 else 1.0
                      for h in (self.history[t] for t in self.tasks)])
        e = np.exp(r / self.temperature)
        self.w.assign((self.n * e / e.sum()).astype(np.float32))

    def current_weights(self):
        return self.w


class GradNorm(Weighting):
    """GradNorm (Chen et al., ICML 2018): weights move so that each task's gradient norm on the last
    shared layer approaches the mean norm times ``(relative inverse training rate)^alpha``; the
    weights are renormalised to sum to the number of tasks."""

    needs_grad_norms = True

    def __init__(self, tasks, base, lr=0.025, alpha: float = 1.5, **kw):
        super().__init__(tasks, base, lr)
        self.alpha = alpha
        self.w = tf.Variable(tf.ones(self.n), trainable=False, name="gradnorm_weights")
        self.initial = tf.Variable(tf.fill([self.n], -1.0), trainable=False, name="gradnorm_initial_loss")

    def weights(self, losses, present):
        return self.w

    def update_from_grad_norms(self, norms, losses, present):
        p = tf.cast(present, tf.float32)
        losses = tf.stack(losses)
        first = tf.logical_and(tf.cast(present, tf.bool), self.initial < 0)
        self.initial.assign(tf.where(first, losses, self.initial))
        known = p * tf.cast(self.initial > 0, tf.float32)
        count = tf.maximum(tf.reduce_sum(known), 1.0)
        g = self.w * tf.stack(norms)  # ||grad of w_t L_t||
        g_mean = tf.reduce_sum(g * known) / count
        ratio = tf.where(known > 0, losses / tf.maximum(self.initial, EPS), 1.0)
        r = ratio / tf.maximum(tf.reduce_sum(ratio * known) / count, EPS)
        target = tf.stop_gradient(g_mean * r ** self.alpha)
        grad_w = tf.sign(g - target) * tf.stack(norms) * known  # d/dw_t of |w_t n_t - target_t|
        w = tf.maximum(self.w - self.lr * grad_w, 1e-3)
        self.w.assign(w * self.n / tf.reduce_sum(w))

    def current_weights(self):
        return self.w


class FAMO(Weighting):
    """Fast adaptive multitask optimisation (Liu et al., NeurIPS 2023, Alg. 1): minimise
    ``c sum_t z_t log L_t`` with ``z = softmax(xi)``, then update ``xi`` from the decrease of each
    task's log-loss on the same batch: ``xi -= beta (J_softmax^T delta + gamma xi)``."""

    second_forward = True

    def __init__(self, tasks, base, lr=0.025, gamma: float = 0.001, **kw):
        super().__init__(tasks, base, lr)
        self.gamma = gamma
        self.xi = tf.Variable(tf.zeros(self.n), trainable=False, name="famo_logits")

    def _z(self, present):
        p = tf.cast(present, tf.float32)
        e = tf.exp(self.xi - tf.reduce_max(self.xi)) * p
        return e / tf.maximum(tf.reduce_sum(e), EPS)

    def weights(self, losses, present):
        # d/dtheta of c sum z_t log L_t = c sum z_t grad L_t / L_t: a weight of c z_t / L_t on L_t
        z = self._z(present)
        losses = tf.stack(losses)
        inv = z / tf.maximum(losses, EPS)
        c = 1.0 / tf.maximum(tf.reduce_sum(inv), EPS)
        return tf.stop_gradient(c * inv)

    def after_step(self, losses_before, losses_after, present):
        z = self._z(present)
        p = tf.cast(present, tf.float32)
        delta = (tf.math.log(tf.maximum(tf.stack(losses_before), EPS))
                 - tf.math.log(tf.maximum(tf.stack(losses_after), EPS))) * p
        grad = z * (delta - tf.reduce_sum(z * delta))  # J_softmax(xi)^T delta
        self.xi.assign(self.xi - self.lr * (grad * p + self.gamma * self.xi))

    def current_weights(self):
        return tf.nn.softmax(self.xi)


class PCGrad(Weighting):
    """Projecting conflicting gradients (Yu et al., NeurIPS 2020, Alg. 1): each task's shared
    gradient is projected onto the normal plane of every other task's gradient it conflicts with
    (negative inner product), in a fixed task order; the projected gradients are summed."""

    per_task_gradients = True

    def shared_gradient(self, grads, losses, present):
        g = grads * tf.cast(present, tf.float32)[:, None]  # absent tasks: zero rows, never conflicting
        out = []
        for i in range(self.n):
            gi = g[i]
            for j in range(self.n):
                if j == i:
                    continue
                dot = tf.reduce_sum(gi * g[j])
                gi = tf.where(dot < 0, gi - dot / tf.maximum(tf.reduce_sum(g[j] * g[j]), EPS) * g[j], gi)
            out.append(gi)
        return tf.add_n(out)


class MGDA(Weighting):
    """Multiple-gradient descent as multi-objective optimisation (Sener and Koltun, NeurIPS 2018):
    the minimum-norm point of the convex hull of the present tasks' shared gradients, found with
    Frank-Wolfe on their Gram matrix (exact for two tasks after one step)."""

    per_task_gradients = True
    steps = 50

    def shared_gradient(self, grads, losses, present):
        alpha = min_norm_weights(grads, present, self.steps)
        return tf.reduce_sum(alpha[:, None] * grads, axis=0) * tf.reduce_sum(tf.cast(present, tf.float32))


def min_norm_weights(grads, present, steps: int = 50):
    """Frank-Wolfe for ``min_alpha ||sum alpha_t g_t||^2`` over the simplex of the present tasks."""
    p = tf.cast(present, tf.float32)
    gram = tf.matmul(grads, grads, transpose_b=True)
    alpha = p / tf.maximum(tf.reduce_sum(p), 1.0)
    for _ in range(steps):
        grad_alpha = tf.linalg.matvec(gram, alpha)
        t = tf.argmin(tf.where(p > 0, grad_alpha, np.inf))
        e = tf.one_hot(t, tf.shape(p)[0])
        # exact line search between alpha and the vertex e: minimise ||(1-s) v + s u||^2
        v_v = tf.reduce_sum(alpha * tf.linalg.matvec(gram, alpha))
        u_u = tf.reduce_sum(e * tf.linalg.matvec(gram, e))
        v_u = tf.reduce_sum(alpha * tf.linalg.matvec(gram, e))
        s = tf.clip_by_value((v_v - v_u) / tf.maximum(v_v + u_u - 2 * v_u, EPS), 0.0, 1.0)
        alpha = (1 - s) * alpha + s * e
    return alpha


def make_weighting(name: str, tasks: list, base: list, lr: float = 0.025, seed: int = 1) -> Weighting:
    """The strategy registered as ``name`` in ``utils.registries.WEIGHTINGS`` (``seed``: for random ones)."""
    from utils.registries import WEIGHTINGS, resolve

    return resolve(WEIGHTINGS, name, "--weighting")(tasks, base, lr=lr, seed=seed)
