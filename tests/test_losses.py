"""Masked losses: mean over labelled rows, zero (never NaN) on all-missing batches."""
import numpy as np
import pytest
import tensorflow as tf

from utils.losses import MaskedAccuracy, masked_cce


def test_masked_cce_equals_mean_over_labelled_rows():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]], np.float32)
    y = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32)
    expected = -(np.log(0.7) + np.log(0.4)) / 2
    np.testing.assert_allclose(float(masked_cce(y, p)), expected, rtol=1e-5)


def test_weighted_rows_scale_their_contribution():
    p = np.array([[0.5, 0.5]], np.float32)
    np.testing.assert_allclose(float(masked_cce(np.array([[0.3, 0.0]], np.float32), p)), 0.3 * np.log(2), rtol=1e-5)


def test_all_missing_batch_gives_zero_loss_and_finite_gradients():
    logits = tf.Variable(np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = masked_cce(tf.zeros((4, 5)), tf.nn.softmax(logits))
    grad = tape.gradient(loss, logits)
    assert float(loss) == 0.0 and np.all(np.isfinite(grad.numpy()))


def test_masked_accuracy_accumulates_over_batches():
    m = MaskedAccuracy()
    m.update_state(np.array([[1, 0], [0, 0]], np.float32), np.array([[0.9, 0.1], [0.1, 0.9]], np.float32))
    m.update_state(np.array([[0, 1], [0, 1]], np.float32), np.array([[0.9, 0.1], [0.2, 0.8]], np.float32))
    np.testing.assert_allclose(float(m.result()), 2 / 3, rtol=1e-6)


def test_temperature_scaling_fixes_an_over_confident_head():
    from utils.calibration import ece, fit_temperature, scaled

    rng = np.random.default_rng(0)
    n, k = 4000, 5
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += 1.0  # right about 55 % of the time ...
    probs = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # ... but with logits x 3: over-confident
    t = fit_temperature(probs, labels)
    assert 2.5 < t < 3.5  # recovers the factor that was applied
    assert ece(scaled(probs, t), labels) < 0.03 < ece(probs, labels)
    sure = np.eye(k)[labels]  # always right, always sure: ECE 0
    assert ece(sure, labels) == 0.0
    wrong = np.eye(k)[(labels + 1) % k]  # always wrong, always sure: ECE 1
    assert ece(wrong, labels) == pytest.approx(1.0)


def test_fitted_offsets_undo_a_head_that_favours_one_class():
    from utils.calibration import fit_offsets, offset_scaled, scaled

    rng = np.random.default_rng(1)
    n = 6000
    logits = rng.normal(0, 2, (n, 2))
    p_true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random(n) < p_true[:, 1]).astype(int)
    bias = np.array([-0.5, 0.5])  # the head leans to class 1
    leaning = np.exp(logits + bias) / np.exp(logits + bias).sum(1, keepdims=True)
    views = np.stack([leaning, leaning])  # two identical views: their average is the head itself
    offsets, temperature = fit_offsets(views, labels)
    np.testing.assert_allclose(offsets, -bias, atol=0.12)
    assert 0.9 < temperature < 1.1
    np.testing.assert_allclose(offset_scaled(views, -bias), p_true, atol=1e-9)
    np.testing.assert_allclose(offset_scaled(views[:1], [0.0, 0.0], 0.7), scaled(leaning, 0.7), atol=1e-12)
    fixed = offset_scaled(views, offsets, temperature).argmax(1)
    assert np.mean(fixed == labels) > np.mean(leaning.argmax(1) == labels) + 0.01


def test_reliability_bins_hold_confidence_accuracy_and_count():
    from utils.calibration import ece, reliability

    probs = np.array([[0.95, 0.05]] * 4 + [[0.45, 0.55]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 0])  # sure rows: 3 of 4 right; unsure rows: 1 of 2
    conf, acc, count = reliability(probs, labels, bins=10)
    assert count.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 4]
    np.testing.assert_allclose([conf[9], acc[9], conf[5], acc[5]], [0.95, 0.75, 0.55, 0.5])
    assert np.isnan(acc[0]) and np.isnan(conf[0])
    assert ece(probs, labels, bins=10) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)
