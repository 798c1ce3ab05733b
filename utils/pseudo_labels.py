"""Selective pseudo labels for the task a dataset does not label (MTL-SA, arXiv 2003.06746, sec. 3.2-3.3).

Given the teacher's (the model before the epoch) logits, probabilities and features on the unlabelled
set U, and features on the labelled set L, ``selective_targets`` returns one target row per sample of U
(the forms below are those of classes; each task kind, ``utils/kinds.py``, gives its own):

* distilled labels ``D = softmax(z / T)`` per row (the reference normalised over the whole matrix);
* weights = product of the enabled factors: confidence (max probability), local density within the
  pseudo class, and distribution closeness (GMM on L and on U, exact partial EMD between each U
  cluster and the L mixture, weight = inverse distance, max-normalised);
* hard selection keeps the top of the weights (``selection_threshold`` is a quantile) as
  ``w * onehot``; the rest are masked or, with ``distill_unselected``, get ``D``;
* interpolation gives every row ``w' * onehot + (1 - w') * D`` with ``w' = (1 - lambda) * w``.

Everything is vectorised and memory-bounded: densities count neighbours in row chunks against a
cutoff estimated from sampled pairs (exact for small classes), so ExpW-sized sets fit in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PseudoConfig:
    """The missing-task strategy, from the scripts' flags."""

    is_naive: bool = False
    is_distilled: bool = False
    is_pesudo: bool = False
    is_interpolation: bool = False
    interpolation_weights: float = 0.0
    selection_threshold: float = 0.0
    is_pesudo_confidence: bool = False
    is_pesudo_density: bool = False
    is_pesudo_distribution: bool = False
    cluster_k: int = 4
    distill_t: float = 2.0
    density_t: float = 0.6
    distill_unselected: bool = True  # the paper: rejected rows keep information through distilled labels
    is_MRF: bool = False  # DCN-AP: labels propagated from the labelled dataset, then MRF refinement
    ap_k: int = 10  # neighbours of the propagation graph
    ap_alpha: float = 0.2  # label spreading: share of the neighbours' labels per iteration
    mrf_k: int = 10  # neighbours of the MRF graph
    mrf_strength: float = 1.0  # Potts reward of agreeing neighbours
    mrf_iterations: int = 5  # mean-field updates
    is_LTN: bool = False  # LEL-LTN: label embedding layer + label transfer network in the model
    ltn_dim: int = 16  # width of the shared label embedding space
    parity_softmax: bool = False  # reproduce the reference's whole-matrix softmax
    seed: int = 1
    strategy: str = ""  # a name of utils.registries.MISSING_TASKS (--missing); "" = from the is_* flags
    options: dict = field(default_factory=dict)  # flags of strategies that have no field here

    @property
    def strategy_name(self) -> str:
        """The registry name of the missing-task strategy: ``--missing``, else the seed lines' is_* flags."""
        if self.strategy:
            return self.strategy
        if self.is_naive:
            return "naive"
        if self.is_distilled:
            return "distilled"
        if self.is_pesudo or self.is_interpolation:
            return "dcn_ap" if self.is_MRF else "lel_ltn" if self.is_LTN else "mtl_sa"
        return "naive"

    @property
    def mode(self) -> str:
        """naive | distilled | pseudo (every strategy that weights or transfers labels)."""
        name = self.strategy_name
        return name if name in ("naive", "distilled") else "pseudo"


@dataclass
class PseudoResult:
    targets: np.ndarray  # (N_U, width) rows fed to the masked loss
    pseudo: np.ndarray  # the teacher's answer per row (class, year, or angles)
    weights: np.ndarray  # final per-row weight in [0, 1]
    selected: np.ndarray  # bool: row used as a pseudo label
    stats: dict = field(default_factory=dict)


def _sq_norms(x):
    return np.einsum("ij,ij->i", x, x)


def _pair_distances(a, b, a_sq=None, b_sq=None):
    a_sq = _sq_norms(a) if a_sq is None else a_sq
    b_sq = _sq_norms(b) if b_sq is None else b_sq
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def density_cutoff(x: np.ndarray, q: float, rng: np.random.Generator, exact_max: int = 3000,
                   n_pairs: int = 400_000) -> float:
    """The ``q`` quantile of all n^2 pairwise distances (self-pairs included, as the reference).

    Exact (``sorted(D.flat)[int(n^2 q)]``) for n <= ``exact_max``; otherwise the same order
    statistic of ``n_pairs`` uniformly sampled pairs.
    """
    n = len(x)
    if n <= exact_max:
        d = _pair_distances(x, x)
        np.fill_diagonal(d, 0.0)
        flat = np.sort(d, axis=None)
    else:
        i, j = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
        flat = np.sort(np.sqrt(np.maximum(_sq_norms(x[i] - x[j]), 0.0)))
    return float(flat[min(int(len(flat) * q), len(flat) - 1)])


def neighbour_counts(x: np.ndarray, cutoff: float, chunk: int = 2048, reference: np.ndarray | None = None):
    """#{j != i : ||x_i - x_j|| < cutoff} for every i, counted against ``x[reference]`` (default: all).

    With a reference sample of fixed size m the cost is O(n m d) instead of O(n^2 d); the counts are
    then those of the sample (the min-max scaling that follows makes their scale irrelevant). Each
    chunk reuses one preallocated (chunk x m) buffer: no large temporaries per chunk.
    """
    x = np.asarray(x, np.float32)
    ref_idx = np.arange(len(x)) if reference is None else np.asarray(reference)
    ref = x[ref_idx]
    sq, ref_sq = _sq_norms(x), _sq_norms(ref)
    column = np.full(len(x), -1)  # each point's column in the reference sample, -1 if not in it
    column[ref_idx] = np.arange(len(ref_idx))
    c2 = np.float32(cutoff) ** 2
    buf = np.empty((min(chunk, len(x)), len(ref)), np.float32)
    mask = np.empty(buf.shape, bool)
    counts = np.empty(len(x), np.int64)
    for s in range(0, len(x), chunk):
        n = min(chunk, len(x) - s)
        d2, m = buf[:n], mask[:n]
        np.matmul(x[s:s + n], ref.T, out=d2)
        d2 *= -2.0
        d2 += sq[s:s + n, None]
        d2 += ref_sq[None, :]
        np.less(d2, c2, out=m)
        own = np.flatnonzero(column[s:s + n] >= 0)
        m[own, column[s:s + n][own]] = False  # a point is not its own neighbour
        counts[s:s + n] = m.sum(axis=1)
    return counts


def minmax(v: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector carries no information and becomes all ones."""
    v = np.asarray(v, np.float64)
    span = v.max() - v.min() if len(v) else 0.0
    return np.ones_like(v) if span <= 0 else (v - v.min()) / span


def local_density(features: np.ndarray, labels: np.ndarray, density_t: float,
                  rng: np.random.Generator, max_reference: int = 4096, **kw) -> np.ndarray:
    """Per pseudo class: neighbour count under the class's ``density_t`` distance quantile, min-max.

    Classes larger than ``max_reference`` count neighbours in a seeded sample of that many of their
    points, so the cost grows linearly with the class size (``tests/test_pseudo_labels.py`` measures
    the rank agreement with the exact count).
    """
    out = np.zeros(len(features))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        x = np.asarray(features[idx], np.float32)
        cutoff = density_cutoff(x, density_t, rng, **{k: v for k, v in kw.items() if k != "chunk"})
        reference = None if len(x) <= max_reference else np.sort(rng.choice(len(x), max_reference, replace=False))
        out[idx] = minmax(neighbour_counts(x, cutoff, kw.get("chunk", 2048), reference))
    return out


def partial_emd(point: np.ndarray, mass: float, targets: np.ndarray, target_mass: np.ndarray) -> float:
    """Exact EMD from one point of mass ``mass`` (< total) into weighted targets, per unit of flow.

    Solved with POT's exact network simplex on a balanced problem: a zero-cost slack source takes the
    target capacity the point does not use. Equals the reference's EMD (sum F*D / sum F).
    """
    import ot

    d = np.linalg.norm(targets - point[None, :], axis=1)
    total = float(np.sum(target_mass))
    mass = min(float(mass), total)
    a = np.array([mass, total - mass], np.float64)
    cost = np.stack([d, np.zeros_like(d)]).astype(np.float64)
    flow = ot.emd(a, np.asarray(target_mass, np.float64), cost)
    return float((flow[0] * d).sum() / max(mass, 1e-12))


def distribution_weights(feat_labelled: np.ndarray, feat_unlabelled: np.ndarray, k: int, seed: int,
                         max_fit: int = 5000, covariance: str | None = None) -> tuple:
    """Inverse GMM-EMD distance of each unlabelled sample's cluster to the labelled distribution.

    Returns ``(weights in (0, 1], per-cluster EMDs)``. GMMs are seeded and fitted on at most
    ``max_fit`` sampled rows (prediction covers every row). ``covariance`` defaults to ``full`` up
    to 32 feature dimensions and ``diag`` above: a full 128-d covariance has 8k parameters per
    component, more than a few thousand samples pin down, and dominated the cost.
    """
    covariance = covariance or ("full" if feat_unlabelled.shape[1] <= 32 else "diag")
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)

    def fit(x):
        sample = x if len(x) <= max_fit else x[rng.choice(len(x), max_fit, replace=False)]
        n = max(1, min(k, len(sample)))
        return GaussianMixture(n, covariance_type=covariance, random_state=seed, reg_covar=1e-4).fit(sample)

    gmm_l, gmm_u = fit(feat_labelled), fit(feat_unlabelled)
    emd = np.array([partial_emd(gmm_u.means_[j], gmm_u.weights_[j], gmm_l.means_, gmm_l.weights_)
                    for j in range(gmm_u.n_components)])
    inv = 1.0 / np.maximum(emd, 1e-8)
    w = inv[gmm_u.predict(feat_unlabelled)]
    return w / w.max(), emd


def select(weights: np.ndarray, q: float) -> np.ndarray:
    """Keep rows whose weight reaches the ``q`` quantile of the weights (ties at it are kept).

    ``thr = sorted(w)[min(floor(q N), N - 1)]``: q = 0 keeps every row, q = 0.8 about the top 20 %,
    q = 1 only the maximum. (The reference used a strict ``>``, dropping the minimum at q = 0, and
    crashed at q = 1.)
    """
    if len(weights) == 0:
        return np.zeros(0, bool)
    s = np.sort(weights)
    thr = s[min(int(np.floor(q * len(s))), len(s) - 1)]
    return weights >= thr


def distilled_targets(cfg: PseudoConfig, kind, logits: np.ndarray, probs: np.ndarray,
                      oracle: np.ndarray | None = None) -> PseudoResult:
    """Every row gets the distilled labels (``kind.distilled``: ``softmax(z / T)`` for classes)."""
    values = kind.values(probs)
    n = len(values)
    rows = kind.distilled(logits, probs, cfg.distill_t, cfg.parity_softmax)
    return with_stats(kind, PseudoResult(rows, values, np.ones(n), np.ones(n, bool)), oracle)


def selective_targets(cfg: PseudoConfig, kind, logits: np.ndarray, probs: np.ndarray,
                      feat_unlabelled: np.ndarray | None = None, feat_labelled: np.ndarray | None = None,
                      oracle: np.ndarray | None = None, mirrored: np.ndarray | None = None,
                      signs: tuple = ()) -> PseudoResult:
    """MTL-SA: weighted, selected (hard) or interpolated (soft) pseudo labels (module docstring).

    ``kind`` (``utils/kinds.py``) says what the teacher's answer is, its confidence (the top
    probability for classes, the mass within 5 years for ages in years, the agreement with the mirror
    image for angles), the groups density is measured in, and how answers, weights and distilled rows
    become target rows.
    """
    rng = np.random.default_rng(cfg.seed)
    width = np.asarray(probs).shape[1]
    D = kind.distilled(logits, probs, cfg.distill_t, cfg.parity_softmax)
    values = kind.values(probs)
    n = len(values)
    factors, stats = [], {}
    if cfg.is_pesudo_confidence:
        confidence, values = kind.confidence(probs, mirrored, signs or None)
        factors.append(confidence)
        stats = kind.confidence_stats(confidence) if mirrored is not None else {}
    if cfg.is_pesudo_density:
        factors.append(local_density(feat_unlabelled, kind.groups(values), cfg.density_t, rng))
    if cfg.is_pesudo_distribution:
        factors.append(distribution_weights(feat_labelled, feat_unlabelled, cfg.cluster_k, cfg.seed)[0])
    if not factors:  # "pure" pseudo labels: half label, half distilled knowledge
        half = np.full(n, 0.5)
        return with_stats(kind, PseudoResult(kind.blend(values, half, D), values, half, np.ones(n, bool)), oracle)
    w = np.prod(factors, axis=0)
    w = w / w.max() if w.max() > 0 else np.ones(n)
    if cfg.is_interpolation:
        w_eff = (1.0 - cfg.interpolation_weights) * w
        result = PseudoResult(kind.blend(values, w_eff, D), values, w_eff, np.ones(n, bool))
    else:
        keep = select(w, cfg.selection_threshold)
        rest = kind.rejected(values, w, D) if cfg.distill_unselected else 0.0
        targets = np.where(keep[:, None], kind.weighted(values, w, width), rest)
        result = PseudoResult(targets.astype(np.float32), values, w, keep)
    result.stats = stats
    return with_stats(kind, result, oracle)


def with_stats(kind, result: PseudoResult, oracle: np.ndarray | None) -> PseudoResult:
    """The share of selected rows, their mean weight and, where hidden true labels exist, the kind's
    score of all, selected and rejected pseudo labels against them (``oracle_acc_*`` / ``oracle_mae_*``)."""
    sel = result.selected
    stats = {"selected_share": float(sel.mean()) if len(sel) else 0.0,
             "mean_weight": float(result.weights[sel].mean()) if sel.any() else 0.0}
    if oracle is not None:
        stats.update(kind.oracle_stats(result.pseudo, oracle, sel))
    result.stats = {**result.stats, **stats}
    return result
