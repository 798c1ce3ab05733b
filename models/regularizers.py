"""Regularisers of the multi-task baselines SFSMR and SLRM, in Keras ops.

Both regularise the *task-specific weight matrices* stacked side by side, W = [W_1 .. W_T] (one row
per shared input feature, one column per task output): SFSMR with the l2,1 norm sum_i ||W_i.||_2,
which switches a shared feature on or off for all tasks together (joint feature selection, Obozinski,
Taskar and Jordan 2010; Argyriou, Evgeniou and Pontil 2008); SLRM with the trace (nuclear) norm of W,
which makes the tasks' weight vectors span a low-dimensional subspace (Ji and Ye 2009), plus a
graph-Laplacian smoothness term on the predictions of the training batch (manifold regularisation,
Belkin, Niyogi and Sindhwani 2006). ``TaskWeightPenalty`` attaches the matrix norms to the first task
head's kernel as a Keras regulariser, so they enter the training loss like weight decay; the
Laplacian term acts on batch activations (``models.layers.FeatureRegularization``).
"""
from __future__ import annotations

import keras
from keras import ops


def stacked_task_matrix(kernels):
    """[W_1 .. W_T]: each head kernel (Dense d x k_t, or conv kh x kw x c x k_t) as rows = inputs."""
    return ops.concatenate([ops.reshape(k, (-1, ops.shape(k)[-1])) for k in kernels], axis=-1)


def row_l21_norm(w):
    """sum over rows of the row's L2 norm: ||W||_{2,1} with one row per shared feature."""
    return ops.sum(ops.sqrt(ops.sum(ops.square(w), axis=1) + 1e-12))


@keras.saving.register_keras_serializable("epga")
class TaskWeightPenalty(keras.regularizers.Regularizer):
    """Weight decay of one kernel plus, on the owner, the SFSMR / SLRM norms of the stacked heads.

    ``group`` holds the task heads' kernels (``attach``, called by ``models.net.build_net`` once they
    exist); the norms are added once, through the kernel of the first head. Each norm is divided by
    its value at initialisation, so its weight is its share of the loss at the start whatever the
    backbone's head sizes (lambda ||W|| with lambda = weight / ||W_0||; the norms of a 1024 x 256
    dense head and of a 1152 x 12 conv head differ by a factor of four). A loaded model has no
    group: the penalty only matters while training, and the engine always rebuilds from the spec.
    """

    def __init__(self, l21: float = 0.0, trace: float = 0.0, nuclear: float = 0.0, l2: float = 0.0):
        self.l21, self.trace, self.nuclear, self.l2 = float(l21), float(trace), float(nuclear), float(l2)
        self.group, self.scale = [], {}

    def norms(self) -> dict:
        out = {}
        if self.l21 or self.trace:
            w = stacked_task_matrix(self.group)
            if self.l21:
                out["l21"] = row_l21_norm(w)
            if self.trace:
                out["trace"] = nuclear_norm(w)
        if self.nuclear:
            out["nuclear"] = sum(nuclear_norm(ops.reshape(k, (-1, ops.shape(k)[-1]))) for k in self.group)
        return out

    def attach(self, kernels: list) -> None:
        self.group = list(kernels)
        self.scale = {k: 1.0 / max(float(v), 1e-12) for k, v in self.norms().items()}

    def matrix_penalty(self):
        total = ops.convert_to_tensor(0.0)
        if self.group:
            for k, v in self.norms().items():
                total = total + getattr(self, k) * self.scale[k] * v
        return total

    def __call__(self, kernel):
        decay = self.l2 * ops.sum(ops.square(kernel)) if self.l2 else 0.0
        return self.matrix_penalty() + decay

    def get_config(self):
        return {"l21": self.l21, "trace": self.trace, "nuclear": self.nuclear, "l2": self.l2}


def nuclear_norm(m):
    """Sum of singular values (trace norm) of ``m``."""
    return ops.sum(ops.svd(m, compute_uv=False))


def laplacian_smoothness(features, probs, sigma: float = 0.5):
    """tr(P^T L P) / B with L = D - S, S_ij = exp(-||f_i - f_j||^2 / (2 sigma^2)), S_ii = 0.

    Features are L2-normalised first so that ``sigma`` has a fixed scale. Equals
    (1 / 2B) sum_ij S_ij ||p_i - p_j||^2: similar samples are pushed to similar predictions.
    """
    f = features / (ops.norm(features, axis=-1, keepdims=True) + 1e-12)
    sq = ops.sum(ops.square(f), axis=-1)
    d2 = ops.maximum(sq[:, None] + sq[None, :] - 2.0 * ops.matmul(f, ops.transpose(f)), 0.0)
    b = ops.shape(features)[0]
    s = ops.exp(-d2 / (2.0 * sigma ** 2)) * (1.0 - ops.eye(b))
    lap = ops.diag(ops.sum(s, axis=-1)) - s
    quad = ops.trace(ops.matmul(ops.matmul(ops.transpose(probs), lap), probs))
    return quad / ops.cast(b, "float32")


def laplacian_penalty(feats, preds, weight: float, sigma: float = 0.5):
    """``weight`` x the Laplacian smoothness summed over tasks (features F_t, predictions P_t)."""
    return weight * sum(laplacian_smoothness(f, p, sigma) for f, p in zip(feats, preds))
