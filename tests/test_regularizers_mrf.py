"""Manifold regularisers (values vs numpy, non-zero gradients) and the MRF refinement."""
import numpy as np
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
    np.testing.assert_allclose(float(R.l21_norm(f)), np.linalg.norm(f, axis=0).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(R.nuclear_norm(f)), np.linalg.svd(f, compute_uv=False).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(R.laplacian_smoothness(f, p, 0.5)), numpy_laplacian(f, p, 0.5), rtol=1e-4)


def test_every_penalty_has_a_gradient():
    rng = np.random.default_rng(1)
    f = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
    p = tf.Variable(rng.dirichlet(np.ones(3), 6).astype(np.float32))
    for kw in ({"l21": 1.0}, {"trace": 1.0}, {"nuclear": 1.0}, {"laplacian": 1.0}):
        with tf.GradientTape() as tape:
            loss = R.feature_penalty([tf.identity(f)], [tf.identity(p)], **kw)  # layer outputs are tensors
        grads = tape.gradient(loss, [f, p])
        assert float(loss) > 0
        assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads), kw


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
