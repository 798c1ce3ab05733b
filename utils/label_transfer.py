"""LEL-LTN style label transfer (REFERENCE_SPEC 4.4; the reference never implemented it).

A small label transfer network ``g`` maps [the other tasks' predicted label distributions, the task
features] of a sample to the target task's label distribution. Its first dense layer is a learned
linear label embedding of the input distributions (``sum_c p_c e_c``). ``g`` is trained on the
samples that carry true labels of the target task and then tags the unlabelled samples; its
probabilities feed the same weighting and selection as the model's own predictions.
"""
from __future__ import annotations

import keras
import numpy as np

from utils.targets import onehot


def build_transfer_net(in_dim: int, n_classes: int, embed_dim: int = 32, hidden: int = 64) -> keras.Model:
    inp = keras.Input((in_dim,), name="transfer_input")
    x = keras.layers.Dense(embed_dim, name="label_embedding")(inp)
    x = keras.layers.Dense(hidden, activation="relu", name="transfer_hidden")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="transfer_prediction")(x)
    return keras.Model(inp, out, name="label_transfer_network")


def transfer_inputs(other_probs: list, features: np.ndarray) -> np.ndarray:
    """Concatenate the other tasks' distributions and L2-normalised features."""
    f = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    return np.concatenate([*other_probs, f], axis=1).astype(np.float32)


def fit_and_transfer(x_labelled: np.ndarray, y_labelled: np.ndarray, x_unlabelled: np.ndarray,
                     n_classes: int, epochs: int = 30, seed: int = 1) -> tuple:
    """Train ``g`` on (x_labelled, y_labelled); return (probabilities on x_unlabelled, train accuracy)."""
    keras.utils.set_random_seed(seed)
    g = build_transfer_net(x_labelled.shape[1], n_classes)
    g.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy", metrics=["accuracy"])
    hist = g.fit(x_labelled, onehot(y_labelled, n_classes), batch_size=128, epochs=epochs, verbose=0)
    return g.predict(x_unlabelled, batch_size=512, verbose=0), float(hist.history["accuracy"][-1])
