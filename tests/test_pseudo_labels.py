"""Pseudo-label formulas pinned against hand-computed cases (MTL-SA, arXiv 2003.06746, sec. 3)."""
import numpy as np
import pytest
from scipy.optimize import linprog

from utils import kinds
from utils import pseudo_labels as pl
from utils.kinds import KINDS
from utils.missing import FillInputs, strategy_for
from utils.pseudo_labels import PseudoConfig


def build_targets(cfg, logits, probs=None, feat_u=None, feat_l=None, oracle=None):
    """The targets the configured strategy fills for a classification task (None: naive)."""
    logits = np.asarray(logits, np.float64)
    probs = kinds.softmax(logits) if probs is None else np.asarray(probs)
    x = FillInputs("emotion", KINDS["classes"], logits.shape[1], logits, probs, feat_u, feat_l, oracle=oracle)
    return strategy_for(cfg).fill(x)


def test_distillation_is_per_row_and_stable():
    z = np.array([[1000.0, 999.0, 0.0], [0.0, 0.0, 0.0]])
    d = kinds.softmax(z, t=2.0)
    np.testing.assert_allclose(d.sum(1), 1.0, rtol=1e-6)
    e = np.exp(np.array([0.0, -0.5, -500.0]))
    np.testing.assert_allclose(d[0], e / e.sum(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(d[1], 1 / 3, rtol=1e-6)


def test_parity_softmax_sums_to_one_over_the_whole_matrix():
    z = np.random.default_rng(0).normal(size=(6, 4))
    assert abs(kinds.global_softmax(z, 2).sum() - 1.0) < 1e-6


def test_quantile_selection_keeps_ties_and_everything_at_q0():
    w = np.array([0.1, 0.5, 1.0, 0.2, 0.9])
    # thr = sorted(w)[floor(0.4 * 5)] = 0.5; rows >= 0.5 are kept (the reference's strict '>' dropped 0.5)
    assert pl.select(w, 0.4).tolist() == [False, True, True, False, True]
    assert pl.select(w, 0.0).all()
    assert pl.select(w, 1.0).tolist() == [False, False, True, False, False]
    assert pl.select(np.array([0.3, 0.3, 0.3, 0.9]), 0.5).tolist() == [True] * 4  # ties at thr


def test_hard_targets_from_confidence_weights():
    probs = np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.2], [0.45, 0.55]])
    cfg = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5, distill_unselected=False)
    r = build_targets(cfg, np.log(probs), probs)
    w = probs.max(1) / probs.max()  # [1, .556, .889, .611] -> thr = sorted(w)[floor(0.5 * 4)] = .889
    assert r.selected.tolist() == [True, False, True, False]
    np.testing.assert_allclose(r.targets, [[0, w[0]], [0, 0], [w[2], 0], [0, 0]], rtol=1e-6)  # masked
    default = build_targets(PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5,
                                         distill_t=1.0), np.log(probs), probs)
    np.testing.assert_allclose(default.targets[[1, 3]], probs[[1, 3]], rtol=1e-5)  # the paper: distilled


def test_unselected_rows_can_keep_distilled_knowledge():
    probs = np.array([[0.1, 0.9], [0.6, 0.4]])
    cfg = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=1.0,
                       distill_unselected=True, distill_t=1.0)
    r = build_targets(cfg, np.log(probs), probs)
    np.testing.assert_allclose(r.targets[1], probs[1], rtol=1e-5)


def test_interpolation_rows_sum_to_one_and_follow_the_formula():
    logits = np.random.default_rng(1).normal(size=(5, 3))
    probs = kinds.softmax(logits)
    cfg = PseudoConfig(is_pesudo=True, is_interpolation=True, is_pesudo_confidence=True, distill_t=2.0,
                       interpolation_weights=0.25)
    r = build_targets(cfg, logits, probs)
    w = 0.75 * probs.max(1) / probs.max(1).max()
    expected = w[:, None] * np.eye(3)[probs.argmax(1)] + (1 - w)[:, None] * kinds.softmax(logits, 2.0)
    np.testing.assert_allclose(r.targets, expected, rtol=1e-5)
    np.testing.assert_allclose(r.targets.sum(1), 1.0, rtol=1e-5)


def test_modes_naive_distilled_pure():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    assert build_targets(PseudoConfig(is_naive=True, is_pesudo=True), logits) is None
    d = build_targets(PseudoConfig(is_distilled=True, distill_t=4.0), logits)
    np.testing.assert_allclose(d.targets, kinds.softmax(logits, 4.0))
    pure = build_targets(PseudoConfig(is_pesudo=True, distill_t=1.0), logits)
    np.testing.assert_allclose(pure.targets[0], 0.5 * np.array([1, 0]) + 0.5 * kinds.softmax(logits)[0], rtol=1e-6)


def test_weights_combine_as_a_product():
    rng = np.random.default_rng(2)
    feats, logits = rng.normal(size=(60, 4)), rng.normal(size=(60, 3))
    probs = kinds.softmax(logits)
    base = dict(is_pesudo=True, is_interpolation=True, seed=3)
    conf = build_targets(PseudoConfig(**base, is_pesudo_confidence=True), logits, probs, feats, feats).weights
    dens = build_targets(PseudoConfig(**base, is_pesudo_density=True), logits, probs, feats, feats).weights
    both = build_targets(PseudoConfig(**base, is_pesudo_confidence=True, is_pesudo_density=True),
                         logits, probs, feats, feats).weights
    prod = conf * dens
    np.testing.assert_allclose(both, prod / prod.max(), rtol=1e-6)


def test_density_counts_match_brute_force():
    x = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, 0)
    cutoff = np.sort(d, axis=None)[int(40 * 40 * 0.3)]
    assert abs(pl.density_cutoff(x, 0.3, np.random.default_rng(0)) - cutoff) < 1e-4
    # counting exactly at a distance is ill-posed in floating point: test a cutoff between two distances
    s = np.unique(d)
    mid = (s[s > cutoff][0] + cutoff) / 2
    brute = (d < mid).sum(1) - 1  # the reference's count, self excluded
    np.testing.assert_array_equal(pl.neighbour_counts(x, mid, chunk=7), brute)
    dens = pl.local_density(x, np.zeros(40, int), 0.3, np.random.default_rng(0))
    exact = (d < cutoff).sum(1) - 1
    assert np.abs(dens - (exact - exact.min()) / (exact.max() - exact.min())).max() < 0.1


def test_sampled_cutoff_is_close_to_exact():
    x = np.random.default_rng(4).normal(size=(1500, 8)).astype(np.float32)
    exact = pl.density_cutoff(x, 0.6, np.random.default_rng(0))
    sampled = pl.density_cutoff(x, 0.6, np.random.default_rng(0), exact_max=100, n_pairs=200_000)
    assert abs(sampled - exact) / exact < 0.01


def test_constant_density_is_all_ones_not_nan():
    assert pl.minmax(np.array([3, 3, 3])).tolist() == [1.0, 1.0, 1.0]
    dens = pl.local_density(np.zeros((1, 2)), np.array([0]), 0.6, np.random.default_rng(0))
    assert dens.tolist() == [1.0]


@pytest.mark.parametrize("seed", range(5))
def test_partial_emd_matches_a_linear_programme(seed):
    rng = np.random.default_rng(seed)
    k, d = 4, 3
    point, targets = rng.normal(size=d), rng.normal(size=(k, d))
    cap = rng.dirichlet(np.ones(k))
    mass = rng.uniform(0.1, 0.9)
    dist = np.linalg.norm(targets - point, axis=1)
    # min sum f_t d_t  s.t.  sum f = mass, 0 <= f_t <= cap_t
    lp = linprog(dist, A_eq=np.ones((1, k)), b_eq=[mass], bounds=list(zip(np.zeros(k), cap)))
    assert abs(pl.partial_emd(point, mass, targets, cap) - lp.fun / mass) < 1e-7


def test_distribution_weights_favour_the_cluster_near_the_labelled_set():
    rng = np.random.default_rng(5)
    labelled = rng.normal(0, 0.3, size=(300, 2))
    near, far = rng.normal(0, 0.3, size=(200, 2)), rng.normal(6, 0.3, size=(200, 2))
    w, emd = pl.distribution_weights(labelled, np.vstack([near, far]), k=2, seed=1)
    assert w[:200].mean() > 0.99 and w[200:].mean() < 0.2 and w.max() == 1.0
    w2, _ = pl.distribution_weights(labelled, np.vstack([near, far]), k=2, seed=1)
    np.testing.assert_array_equal(w, w2)  # seeded GMMs: reproducible


def test_oracle_statistics_of_selected_and_rejected():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45], [0.6, 0.4]])
    oracle = np.array([0, 0, 1, 1])
    r = build_targets(PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5),
                      np.log(probs), probs, oracle=oracle)
    assert r.stats["oracle_acc_selected"] == 1.0 and r.stats["oracle_acc_rejected"] == 0.0
    assert r.stats["selected_share"] == 0.5


def test_pseudo_label_plots_are_written_into_the_given_folder(tmp_path):
    from utils.pseudo_plots import plot_pseudo_labels

    rng = np.random.default_rng(0)
    feats, logits = rng.normal(size=(80, 5)), rng.normal(size=(80, 3))
    r = build_targets(PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5), logits)
    files = plot_pseudo_labels(tmp_path / "pseudo", 3, "pose", r, feats, rng.integers(0, 3, 80))
    assert [f.name for f in files] == ["epoch_003_pose_weights.png", "epoch_003_pose_tsne.png"]
    assert all(f.stat().st_size > 1000 for f in files)


def test_label_propagation_takes_labels_from_the_labelled_dataset():
    from utils.label_propagation import propagate

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 4
    y_l = np.repeat(np.arange(3), 40)
    feat_l = centres[y_l] + rng.normal(0, 0.5, (120, 16))
    truth = rng.integers(0, 3, 90)
    feat_u = centres[truth] + rng.normal(0, 0.5, (90, 16))
    probs = propagate(feat_l, y_l, feat_u, n_classes=4, k=8, alpha=0.2)
    assert probs.shape == (90, 4) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == truth).mean() == 1.0 and probs[:, 3].max() == 0.0  # class 3 has no labelled row


def test_label_embedding_layer_scores_heads_against_their_own_labels():
    from models.layers import LabelEmbedding

    layer = LabelEmbedding([3, 2], 4)
    rng = np.random.default_rng(0)
    h = [rng.normal(size=(5, 4)).astype(np.float32) for _ in range(2)]
    z_a, z_b, e_a, e_b = [np.asarray(v) for v in layer(h)]
    table = np.asarray(layer.table)
    np.testing.assert_allclose(z_a, h[0] @ table[:3].T, rtol=1e-5)
    np.testing.assert_allclose(z_b, h[1] @ table[3:].T, rtol=1e-5)
    soft = np.exp(z_b) / np.exp(z_b).sum(1, keepdims=True)
    np.testing.assert_allclose(e_b, soft @ table[3:], rtol=1e-4, atol=1e-6)
    assert e_a.shape == (5, 4)


def test_sampled_density_ranks_points_like_the_exact_count():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal(0, 1, (3000, 16)), rng.normal(0, 3, (3000, 16))]).astype(np.float32)
    labels = np.zeros(len(x), int)
    exact = pl.local_density(x, labels, 0.3, np.random.default_rng(0), max_reference=len(x))
    sampled = pl.local_density(x, labels, 0.3, np.random.default_rng(0), max_reference=1024)
    assert spearmanr(exact, sampled).statistic > 0.95
    # the dense half is recognised as dense by both
    assert sampled[:3000].mean() > sampled[3000:].mean() + 0.2
    counts = pl.neighbour_counts(x[:50], 1e-9, reference=np.arange(10))  # a reference point is not its own neighbour
    assert counts.tolist() == [0] * 50


def test_pseudo_label_keeps_confident_rows_as_one_hot_and_masks_the_rest():
    from utils.cli import parse_config

    cfg = parse_config("ALTERNATIVE_EP", ["--missing=pseudo_label", "--pl_threshold=0.8"])
    assert cfg.pseudo.options == {"pl_threshold": 0.8} and cfg.method_name() == "Pseudo-Label t=0.8"
    probs = np.array([[0.9, 0.1, 0.0], [0.5, 0.3, 0.2], [0.05, 0.15, 0.8]], np.float32)
    x = FillInputs("emotion", KINDS["classes"], 3, np.log(probs + 1e-8), probs, oracle=np.array([0, 0, 1]))
    r = strategy_for(cfg.pseudo).fill(x)
    np.testing.assert_array_equal(r.targets, [[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert r.selected.tolist() == [True, False, True] and r.stats["oracle_acc_selected"] == 0.5
