"""Selective pseudo labels for the task a dataset does not label (MTL-SA, arXiv 2003.06746, sec. 3.2-3.3).

Given the teacher's (the model before the epoch) logits, probabilities and features on the unlabelled
set U, and features on the labelled set L, ``build_targets`` returns one target row per sample of U:

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

from utils.targets import onehot


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
    targets: np.ndarray  # (N_U, C) rows fed to the masked loss
    pseudo: np.ndarray  # argmax pseudo label per row
    weights: np.ndarray  # final per-row weight in [0, 1]
    selected: np.ndarray  # bool: row used as a pseudo label
    stats: dict = field(default_factory=dict)


def softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """Row-wise, max-subtracted softmax of ``logits / t``."""
    z = np.asarray(logits, np.float64) / float(t)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def global_softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """The reference's softmax over the whole matrix (rows sum to ~1/N). Parity only."""
    z = np.asarray(logits, np.float64) / float(t)
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)


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


def build_targets(cfg: PseudoConfig, logits: np.ndarray, probs: np.ndarray | None = None,
                  feat_unlabelled: np.ndarray | None = None, feat_labelled: np.ndarray | None = None,
                  oracle: np.ndarray | None = None) -> PseudoResult | None:
    """Target rows for the unlabelled set U of one task, by the flags' mode (None for naive)."""
    if cfg.mode == "naive":
        return None
    if cfg.mode == "distilled":
        return distilled_targets(cfg, logits, probs, oracle)
    return selective_targets(cfg, logits, probs, feat_unlabelled, feat_labelled, oracle)


def distilled_targets(cfg: PseudoConfig, logits: np.ndarray, probs: np.ndarray | None = None,
                      oracle: np.ndarray | None = None) -> PseudoResult:
    """Every row gets the distilled labels ``softmax(z / T)``."""
    n = len(logits)
    D = (global_softmax if cfg.parity_softmax else softmax)(logits, cfg.distill_t)
    probs = softmax(logits) if probs is None else np.asarray(probs, np.float32)
    return _with_stats(PseudoResult(D, probs.argmax(axis=1), np.ones(n), np.ones(n, bool)), oracle)


def selective_targets(cfg: PseudoConfig, logits: np.ndarray, probs: np.ndarray | None = None,
                      feat_unlabelled: np.ndarray | None = None, feat_labelled: np.ndarray | None = None,
                      oracle: np.ndarray | None = None) -> PseudoResult:
    """MTL-SA: weighted, selected (hard) or interpolated (soft) pseudo labels (module docstring)."""
    rng = np.random.default_rng(cfg.seed)
    n, c = logits.shape
    D = (global_softmax if cfg.parity_softmax else softmax)(logits, cfg.distill_t)
    probs = softmax(logits) if probs is None else np.asarray(probs, np.float32)
    pseudo = probs.argmax(axis=1)
    factors = []
    if cfg.is_pesudo_confidence:
        factors.append(probs.max(axis=1))
    if cfg.is_pesudo_density:
        factors.append(local_density(feat_unlabelled, pseudo, cfg.density_t, rng))
    if cfg.is_pesudo_distribution:
        factors.append(distribution_weights(feat_labelled, feat_unlabelled, cfg.cluster_k, cfg.seed)[0])
    hot = onehot(pseudo, c)
    if not factors:  # "pure" pseudo labels: half label, half distilled knowledge
        result = PseudoResult(0.5 * hot + 0.5 * D, pseudo, np.full(n, 0.5), np.ones(n, bool))
        return _with_stats(result, oracle)
    w = np.prod(factors, axis=0)
    w = w / w.max() if w.max() > 0 else np.ones(n)
    if cfg.is_interpolation:
        w_eff = (1.0 - cfg.interpolation_weights) * w
        targets = w_eff[:, None] * hot + (1.0 - w_eff)[:, None] * D
        result = PseudoResult(targets.astype(np.float32), pseudo, w_eff, np.ones(n, bool))
    else:
        keep = select(w, cfg.selection_threshold)
        targets = np.where(keep[:, None], w[:, None] * hot, D if cfg.distill_unselected else 0.0)
        result = PseudoResult(targets.astype(np.float32), pseudo, w, keep)
    return _with_stats(result, oracle)


AGREEMENT_DEGREES = 10.0  # angle pseudo labels: weight exp(-disagreement / 10 degrees) with the mirror image


def angle_targets(cfg: PseudoConfig, values: np.ndarray, mirrored: np.ndarray | None = None,
                  feat_unlabelled: np.ndarray | None = None, feat_labelled: np.ndarray | None = None,
                  signs: np.ndarray | None = None, distilled: bool | None = None) -> PseudoResult | None:
    """Pseudo labels for a task regressed in degrees (head-pose angles), rows ``[angles..., w]``.

    A regression has no class probabilities, so the MTL-SA factors are read as follows (documented
    in the README): *confidence* is the teacher's agreement with itself on the mirror image of the
    face, ``exp(-mean |a(x) - s * a(flip x)| / AGREEMENT_DEGREES)`` with ``s`` the flip signs (yaw and
    roll change sign), and the value is the mean of the two readings (test-time flip averaging);
    *density* counts neighbours within the pseudo label's yaw bin; *distribution* is unchanged (GMM +
    EMD on features). Distilled mode gives the teacher's angles at weight 1. Hard selection keeps the
    rows whose weight reaches the ``selection_threshold`` quantile; the distilled form of an angle is
    the angle itself, so rejected rows keep it at their own weight with ``distill_unselected`` and are
    masked otherwise. Interpolation scales the weights by ``1 - lambda``.
    """
    from utils.targets import degree_rows
    from utils.tasks import yaw_to_pose

    if distilled is None:
        if cfg.mode == "naive":
            return None
        distilled = cfg.mode == "distilled"
    values = np.asarray(values, np.float32)
    n = len(values)
    pseudo = np.array([yaw_to_pose(v) for v in values[:, 0]], np.int64)  # yaw bin: density's classes
    if distilled:
        return PseudoResult(degree_rows(values), pseudo, np.ones(n), np.ones(n, bool), {"selected_share": 1.0})
    factors, stats = [], {}
    if cfg.is_pesudo_confidence and mirrored is not None:
        corrected = np.asarray(mirrored, np.float32) * (1.0 if signs is None else np.asarray(signs, np.float32))
        gap = np.abs(values - corrected).mean(1)
        values = 0.5 * (values + corrected)
        factors.append(np.exp(-gap / AGREEMENT_DEGREES))
        stats["mirror_gap_degrees"] = float(gap.mean())
    if cfg.is_pesudo_density:
        factors.append(local_density(feat_unlabelled, pseudo, cfg.density_t, np.random.default_rng(cfg.seed)))
    if cfg.is_pesudo_distribution:
        factors.append(distribution_weights(feat_labelled, feat_unlabelled, cfg.cluster_k, cfg.seed)[0])
    w = np.prod(factors, axis=0) if factors else np.full(n, 0.5)
    w = w / w.max() if factors and w.max() > 0 else w
    keep = np.ones(n, bool)
    if cfg.is_interpolation:
        w = (1.0 - cfg.interpolation_weights) * w
    else:
        keep = select(w, cfg.selection_threshold)
    rows = degree_rows(values, np.where(keep | cfg.distill_unselected, w, 0.0))
    stats.update({"selected_share": float(keep.mean()) if n else 0.0,
                  "mean_weight": float(w[keep].mean()) if keep.any() else 0.0})
    return PseudoResult(rows, pseudo, w, keep, stats)


def _with_stats(result: PseudoResult, oracle: np.ndarray | None) -> PseudoResult:
    sel = result.selected
    stats = {"selected_share": float(sel.mean()) if len(sel) else 0.0,
             "mean_weight": float(result.weights[sel].mean()) if sel.any() else 0.0}
    if oracle is not None and (oracle >= 0).any():
        known = oracle >= 0
        hit = result.pseudo == oracle
        for name, part in (("all", known), ("selected", sel & known), ("rejected", ~sel & known)):
            stats[f"oracle_acc_{name}"] = float(hit[part].mean()) if part.any() else float("nan")
    result.stats = stats
    return result
