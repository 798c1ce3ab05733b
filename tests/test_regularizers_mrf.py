"""Manifold regularisers (values vs numpy, non-zero gradients) and the MRF refinement."""
import numpy as np
import pytest
import tensorflow as tf

from models import regularizers as R
from utils.mrf import mean_field


def numpy_laplacian(f, p, sigma):
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    d2 = ((f[:, None] - f[None]) ** 2).sum(-1)
    s = np.exp(-d2 / (2 * sigma ** 2))
    np.fill_diagonal(s, 0)
    lap = np.diag(s.sum(1)) - s
    return np.trace(p.T @ lap @ p) / len(f)


def test_values_match_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(6, 4)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), 6).astype(np.float32)
    np.testing.assert_allclose(float(R.row_l21_norm(f)), np.linalg.norm(f, axis=1).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(R.nuclear_norm(f)), np.linalg.svd(f, compute_uv=False).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(R.laplacian_smoothness(f, p, 0.5)), numpy_laplacian(f, p, 0.5), rtol=1e-4)
    conv = rng.normal(size=(3, 3, 2, 7)).astype(np.float32)  # one row per (kernel position, input channel)
    dense = rng.normal(size=(18, 5)).astype(np.float32)
    stacked = np.asarray(R.stacked_task_matrix([conv, dense]))
    assert stacked.shape == (18, 12) and np.array_equal(stacked[:, :7], conv.reshape(18, 7))


def stacked_norms(model, heads):
    w = np.concatenate([model.get_layer(h).get_weights()[0].reshape(-1, model.get_layer(h).get_weights()[0]
                                                                      .shape[-1]) for h in heads], axis=1)
    return np.linalg.norm(w, axis=1).sum(), np.linalg.svd(w, compute_uv=False).sum()


def test_sfsmr_and_slrm_penalise_the_stacked_head_weights_not_activations():
    from models import ModelSpec, build_net

    model = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, 32,
                                feature_regularization={"l21": 0.3, "trace": 0.2}))
    assert sum(float(v) for v in model.losses) == pytest.approx(0.5, rel=1e-4)  # each norm's share at init
    l21_0, tr_0 = stacked_norms(model, ["emotion_conv", "pose_conv"])
    kernel = model.get_layer("pose_conv").kernel
    kernel.assign(kernel * 3.0)  # the penalty follows the weights, whatever the batch
    l21_1, tr_1 = stacked_norms(model, ["emotion_conv", "pose_conv"])
    assert sum(float(v) for v in model.losses) == pytest.approx(0.3 * l21_1 / l21_0 + 0.2 * tr_1 / tr_0, rel=1e-4)
    with tf.GradientTape() as tape:
        loss = sum(model.losses)
    grads = tape.gradient(loss, [model.get_layer("emotion_conv").kernel, kernel])
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)  # every head is regularised


def test_laplacian_penalty_has_a_gradient():
    rng = np.random.default_rng(1)
    f = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
    p = tf.Variable(rng.dirichlet(np.ones(3), 6).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = R.laplacian_penalty([tf.identity(f)], [tf.identity(p)], 1.0)  # layer outputs are tensors
    grads = tape.gradient(loss, [f, p])
    assert float(loss) > 0 and all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_mrf_moves_noisy_labels_towards_their_neighbours():
    rng = np.random.default_rng(2)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0]])
    truth = np.repeat([0, 1], 50)
    feats = centres[truth] + rng.normal(0, 0.5, size=(100, 3))
    probs = np.where(truth[:, None] == np.arange(2), 0.7, 0.3)
    flip = rng.choice(100, 15, replace=False)
    probs[flip] = probs[flip][:, ::-1]  # 15 confidently wrong pseudo labels
    refined = mean_field(probs, feats, k=8, strength=2.0)
    assert (probs.argmax(1) == truth).mean() == 0.85
    assert (refined.argmax(1) == truth).mean() == 1.0
    np.testing.assert_allclose(refined.sum(1), 1.0, rtol=1e-5)
