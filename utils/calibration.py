"""Calibrated confidences: expected calibration error, temperature scaling (Guo et al., ICML 2017), logit
offsets fitted on validation with it (``fit_offsets``) and the logit offsets of a prior shift
(``prior_offsets``).

A softmax head's probabilities ``p`` are recalibrated as ``softmax(log p / T)`` with one temperature per
task, fitted on validation rows by minimising the negative log-likelihood (T > 1 softens an
over-confident head). ECE (Naeini et al. 2015) sorts rows into 15 equal-width confidence bins and
averages |accuracy - mean confidence| weighted by the bin's share of rows. numpy and scipy only.
"""
from __future__ import annotations

import numpy as np


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row."""
    z = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the validation NLL of ``scaled(probs, T)``."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda log_t: nll(scaled(probs, np.exp(log_t)), labels), bounds=(np.log(0.05),
                          np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def offset_scaled(views: np.ndarray, offsets, temperature: float = 1.0) -> np.ndarray:
    """``softmax(log(mean_v softmax(log p_v + b)) / T)``: per-view probabilities ``views`` (V, N, C) of a
    head whose logits get the offsets ``b`` (as ``models.shift_logits`` bakes them into its last bias),
    averaged over the views (test-time flip) and temperature scaled (N, C)."""
    z = np.log(np.clip(np.asarray(views, np.float64), 1e-12, 1.0)) + np.asarray(offsets, np.float64)
    z -= z.max(-1, keepdims=True)
    e = np.exp(z)
    return scaled((e / e.sum(-1, keepdims=True)).mean(0), temperature)


def fit_offsets(views: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Centred logit offsets and a temperature that jointly minimise the NLL of ``offset_scaled``.

    The bias of vector scaling (Guo et al. 2017, sec. 4.2) with one shared scale: unlike a temperature
    alone, it can change which class wins, so it is judged by held-out accuracy, not only calibration.
    """
    from scipy.optimize import minimize

    classes = np.asarray(views).shape[-1]

    def unpack(x):
        return np.append(x[:-1], -x[:-1].sum()), float(np.exp(np.clip(x[-1], np.log(0.05), np.log(20.0))))

    res = minimize(lambda x: nll(offset_scaled(views, *unpack(x)), labels), np.zeros(classes), method="L-BFGS-B")
    offsets, temperature = unpack(res.x)
    return offsets, temperature


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple:
    """Per equal-width bin of the top-class confidence: its mean confidence, its accuracy and its row count
    (three arrays of length ``bins``; an empty bin has NaN confidence and accuracy and count 0)."""
    conf, hit = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    which = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        return (np.bincount(which, conf, bins) / count, np.bincount(which, hit, bins) / count, count)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, ``bins`` equal-width bins."""
    conf, acc, count = reliability(probs, labels, bins)
    have = count > 0
    return float(np.sum(count[have] / count.sum() * np.abs(acc[have] - conf[have])))


def prior_offsets(counts, class_balance_power: float = 0.0) -> np.ndarray:
    """Logit offsets that move a head's answers from its training prior to a uniform one.

    A classifier fitted to rows with class prior pi learns p(y | x) proportional to p(x | y) pi(y); adding
    -log pi(y) to its logits answers as if every class were equally likely (Saerens et al., Neural
    Computation 2002; Menon et al., ICLR 2021, sec. 4, post-hoc logit adjustment with tau = 1). The prior
    the loss saw is the training rows' class counts n_c weighted by the class balance ``(1 / n_c) **
    power`` (``utils.targets.class_weights``): pi ~ n_c ** (1 - power). Offsets are centred (they sum to 0).
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError(f"every class needs training rows for its prior; counts {counts.astype(int).tolist()}")
    log_prior = (1.0 - class_balance_power) * np.log(counts / counts.sum())
    return -(log_prior - log_prior.mean())
