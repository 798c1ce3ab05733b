"""SSR-Net (Yang et al. 2018): soft stagewise regression of age (and gender) from two conv streams.

Two streams (conv-BN-ReLU-average pool and conv-BN-tanh-max pool) feed three stages. Stage k fuses
both streams' features and predicts a distribution ``p_k`` over ``s_k`` bins, a dynamic shift
``eta_k`` per bin and a dynamic range ``delta_k``; the output is

    y = V * sum_k sum_i p_k,i * (i + lambda_local * eta_k,i) / prod_{j<=k} (s_j * (1 + lambda_d * delta_j))

(``V`` = 101 for age in years, 1 for gender). To plug into the classification heads of this project,
``y`` is written as a two-hot distribution over the task's bins whose expected value is exactly ``y``
(``ExpectationToBins``); training uses the expected-value L1 loss, i.e. SSR-Net's MAE.
"""
from __future__ import annotations

import keras
from keras import ops

from models.layers import PACKAGE

STAGES = (3, 3, 3)
FEATURE_LAYER = "ssr_a_relu4"


@keras.saving.register_keras_serializable(PACKAGE)
class SoftStagewiseRegression(keras.layers.Layer):
    """Inputs ``[p_1..p_K, delta_1..delta_K, eta_1..eta_K]``; output ``y`` of shape (batch,)."""

    def __init__(self, stages=STAGES, value_range: float = 101.0, lambda_local: float = 0.25,
                 lambda_d: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.stages, self.value_range = tuple(stages), float(value_range)
        self.lambda_local, self.lambda_d = float(lambda_local), float(lambda_d)

    def call(self, inputs):
        k = len(self.stages)
        probs, deltas, etas = inputs[:k], inputs[k:2 * k], inputs[2 * k:]
        y, denom = 0.0, 1.0
        for s, p, d, e in zip(self.stages, probs, deltas, etas):
            denom = denom * s * (1.0 + self.lambda_d * d[:, 0])
            idx = ops.cast(ops.arange(s), "float32")[None, :]
            y = y + ops.sum(p * (idx + self.lambda_local * e), axis=-1) / denom
        return y * self.value_range

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

    def get_config(self):
        return {**super().get_config(), "stages": list(self.stages), "value_range": self.value_range,
                "lambda_local": self.lambda_local, "lambda_d": self.lambda_d}


@keras.saving.register_keras_serializable(PACKAGE)
class ExpectationToBins(keras.layers.Layer):
    """A value in [0, n-1] as a two-hot distribution over n bins with that expected value.

    With ``log=True`` the layer returns log-probabilities (logits whose softmax is the distribution).
    """

    def __init__(self, n_bins: int, log: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_bins, self.log = int(n_bins), bool(log)

    def call(self, y):
        y = ops.clip(y, 0.0, self.n_bins - 1.0)
        lo = ops.floor(y)
        frac = y - lo
        lo_i = ops.cast(lo, "int32")
        hi_i = ops.minimum(lo_i + 1, self.n_bins - 1)
        bins = (ops.one_hot(lo_i, self.n_bins) * (1.0 - frac)[:, None]
                + ops.one_hot(hi_i, self.n_bins) * frac[:, None])
        return ops.log(bins + 1e-7) if self.log else bins

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_bins)

    def get_config(self):
        return {**super().get_config(), "n_bins": self.n_bins, "log": self.log}


def _streams(x):
    """Feature maps of both streams after blocks 1, 2 and 4 (the three stages' inputs)."""
    L = keras.layers
    a, b, outs = x, x, []
    for i in range(1, 5):
        a = L.Conv2D(32, 3, padding="same", name=f"ssr_a_conv{i}")(a)
        a = L.BatchNormalization(momentum=0.9, name=f"ssr_a_bn{i}")(a)
        a = L.Activation("relu", name=f"ssr_a_relu{i}")(a)
        b = L.Conv2D(16, 3, padding="same", name=f"ssr_b_conv{i}")(b)
        b = L.BatchNormalization(momentum=0.9, name=f"ssr_b_bn{i}")(b)
        b = L.Activation("tanh", name=f"ssr_b_tanh{i}")(b)
        if i < 4:
            a = L.AveragePooling2D(2, name=f"ssr_a_pool{i}")(a)
            b = L.MaxPooling2D(2, name=f"ssr_b_pool{i}")(b)
        if i in (1, 2, 4):
            outs.append((a, b))
    return outs


def _stage(task: str, k: int, s: int, a, b, dropout: float):
    """Stage ``k`` of one task: fused features -> (p_k, delta_k, eta_k)."""
    L = keras.layers
    pool = max(1, int(a.shape[1]) // 4)
    a = L.Conv2D(10, 1, activation="relu", name=f"{task}_s{k}_a_proj")(a)
    b = L.Conv2D(10, 1, activation="relu", name=f"{task}_s{k}_b_proj")(b)
    if pool > 1:
        a = L.AveragePooling2D(pool, name=f"{task}_s{k}_a_pool")(a)
        b = L.MaxPooling2D(pool, name=f"{task}_s{k}_b_pool")(b)
    a = L.Dropout(dropout, name=f"{task}_s{k}_a_drop")(L.Flatten(name=f"{task}_s{k}_a_flat")(a))
    b = L.Dropout(dropout, name=f"{task}_s{k}_b_drop")(L.Flatten(name=f"{task}_s{k}_b_flat")(b))
    a = L.Dense(2 * s, activation="relu", name=f"{task}_s{k}_a_fc")(a)
    b = L.Dense(2 * s, activation="relu", name=f"{task}_s{k}_b_fc")(b)
    fused = L.Multiply(name=f"{task}_s{k}_fuse")([a, b])
    hidden = L.Dense(2 * s, activation="relu", name=f"{task}_s{k}_hidden")(fused)
    p = L.Dense(s, activation="softmax", name=f"{task}_s{k}_p")(hidden)
    delta = L.Dense(1, activation="tanh", name=f"{task}_s{k}_delta")(fused)
    eta = L.Dense(s, activation="tanh", name=f"{task}_s{k}_eta")(fused)
    return p, delta, eta, fused


def ssrnet_heads(x, tasks: dict, dropout: float = 0.2) -> tuple:
    """SSR-Net streams and one SSR module per task (age: 0..100 years over 101 bins; gender: [0, 1]).

    Returns the logits per task: log two-hot distributions, so the usual softmax output equals the
    two-hot distribution. ``FEATURE_LAYER`` holds the shared features (for pseudo labels).
    """
    unsupported = set(tasks) - {"age", "gender"}
    if unsupported:
        raise ValueError(f"ssrnet predicts age and gender only, not {sorted(unsupported)}")
    stages = _streams(x)
    logits = {}
    for task, n_bins in tasks.items():
        if task == "age" and n_bins != 101:
            raise ValueError("ssrnet regresses age in years: use a years dataset or --age_kind years")
        parts = [_stage(task, k + 1, s, a, b, dropout) for k, (s, (a, b)) in enumerate(zip(STAGES, stages))]
        y = SoftStagewiseRegression(STAGES, value_range=n_bins - 1.0 if task == "age" else 1.0,
                                    name=f"{task}_ssr")([q[0] for q in parts] + [q[1] for q in parts]
                                                        + [q[2] for q in parts])
        logits[task] = ExpectationToBins(n_bins, log=True, name=task)(y)
    return logits


def load_released(model, weights: str, spec) -> None:
    """Registry loader: a ``.weights.h5`` file saved from this project's ssrnet."""
    model.load_weights(weights)
