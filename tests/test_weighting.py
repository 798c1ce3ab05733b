"""Loss-weighting strategies against hand computations, with tasks missing from a batch."""
import csv

import numpy as np
import pytest
import tensorflow as tf

from utils.registries import WEIGHTINGS
from utils.weighting import DWA, FAMO, MGDA, GradNorm, PCGrad, Uncertainty, make_weighting, min_norm_weights

BOTH = tf.constant([True, True])


def test_every_registered_strategy_builds_and_unknown_names_are_listed():
    for name in WEIGHTINGS:
        assert make_weighting(name, ["a", "b"], [1.0, 2.0]).n == 2
    with pytest.raises(ValueError, match="choose from fixed, uncertainty"):
        make_weighting("nope", ["a"], [1.0])


def test_pcgrad_projects_conflicting_gradients():
    g = tf.constant([[1.0, 0.0], [-1.0, 1.0]])  # inner product -1: conflict
    # g1 - (g1.g2)/|g2|^2 g2 = (0.5, 0.5); g2 - (g2.g1)/|g1|^2 g1 = (0, 1)
    out = PCGrad(["a", "b"], [1, 1]).shared_gradient(g, None, BOTH)
    np.testing.assert_allclose(out.numpy(), [0.5, 1.5], atol=1e-6)
    agree = tf.constant([[1.0, 0.0], [1.0, 1.0]])  # no conflict: plain sum
    np.testing.assert_allclose(PCGrad(["a", "b"], [1, 1]).shared_gradient(agree, None, BOTH).numpy(), [2, 1])


def test_an_absent_task_gives_no_gradient_and_no_projection():
    g = tf.constant([[1.0, 0.0], [-1.0, 1.0]])
    only_a = tf.constant([True, False])
    np.testing.assert_allclose(PCGrad(["a", "b"], [1, 1]).shared_gradient(g, None, only_a).numpy(), [1, 0])
    np.testing.assert_allclose(MGDA(["a", "b"], [1, 1]).shared_gradient(g, None, only_a).numpy(), [1, 0], atol=1e-6)


def test_mgda_finds_the_minimum_norm_point_of_two_gradients():
    g = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    # closed form: alpha_1 = (g2 - g1).g2 / |g1 - g2|^2 = 4 / 5
    np.testing.assert_allclose(min_norm_weights(g, BOTH).numpy(), [0.8, 0.2], atol=1e-5)
    three = tf.constant([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])  # the hull contains the origin
    a = min_norm_weights(three, tf.constant([True, True, True]), steps=500).numpy()
    assert np.linalg.norm(a @ three.numpy()) < 0.05


def test_uncertainty_weights_follow_kendall_et_al():
    u = Uncertainty(["a", "b"], [1, 1], lr=0.1)
    losses = [tf.constant(2.0), tf.constant(0.5)]
    present = tf.constant([True, False])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(u.weights(losses, present) * tf.cast(present, tf.float32) * tf.stack(losses)) \
            + u.extra_loss(losses, present)
    grad = tape.gradient(total, u.log_var).numpy()
    # d/ds [exp(-s) L + s/2] at s = 0 is -L + 1/2; an absent task's s gets no gradient
    np.testing.assert_allclose(grad, [-1.5, 0.0], atol=1e-6)


def test_dwa_weights_follow_liu_et_al():
    d = DWA(["a", "b"], [1, 1], temperature=2.0)
    d.epoch_end({"a": 1.0, "b": 1.0})
    np.testing.assert_allclose(d.w.numpy(), [1, 1])  # two epochs are needed
    d.epoch_end({"a": 0.5, "b": 1.0})
    e = np.exp(np.array([0.5, 1.0]) / 2)
    np.testing.assert_allclose(d.w.numpy(), 2 * e / e.sum(), atol=1e-6)  # the slower task weighs more


def test_famo_lowers_the_weight_of_the_task_that_improved_more():
    f = FAMO(["a", "b"], [1, 1], lr=0.1, gamma=0.0)
    f.after_step([tf.constant(2.0), tf.constant(1.0)], [tf.constant(1.0), tf.constant(1.0)], BOTH)
    delta = np.array([np.log(2.0), 0.0])
    z = np.array([0.5, 0.5])
    np.testing.assert_allclose(f.xi.numpy(), -0.1 * z * (delta - z @ delta), atol=1e-6)
    assert f.current_weights().numpy()[0] < 0.5
    w = f.weights([tf.constant(2.0), tf.constant(1.0)], BOTH).numpy()  # c z_t / L_t, c = 1 / sum z / L
    zz = f.current_weights().numpy()
    np.testing.assert_allclose(w, (zz / [2, 1]) / (zz / [2, 1]).sum(), atol=1e-6)


def test_gradnorm_moves_weights_towards_equal_gradient_norms():
    g = GradNorm(["a", "b"], [1, 1], lr=0.1, alpha=1.5)
    g.update_from_grad_norms([tf.constant(2.0), tf.constant(1.0)], [tf.constant(1.0), tf.constant(1.0)], BOTH)
    # first step: rates equal, target = mean norm 1.5; d|w n - 1.5|/dw = (+2, -1); renormalised to sum 2
    w = np.array([1 - 0.1 * 2, 1 + 0.1 * 1])
    np.testing.assert_allclose(g.w.numpy(), 2 * w / w.sum(), atol=1e-6)


JOINT, ALTERNATING = "CONFUSION_EP_multitask", "ALTERNATIVE_EP"


@pytest.mark.parametrize("name,script", [("uncertainty", JOINT), ("pcgrad", JOINT), ("famo", JOINT),
                                         ("dwa", ALTERNATING), ("mgda", ALTERNATING)])
def test_strategies_train_every_head_through_the_engine(name, script, toy_root, tmp_path):
    """Joint and alternating runs: every task head learns (under PCGrad and MGDA the heads' loss was taken
    outside the gradient tape, so the heads kept their initial weights), and loss weights move."""
    from models import ModelSpec, build_net, load_model
    from utils.cli import parse_config
    from utils.engine import Trainer

    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--rounds=2", "--batch_size=32",
            "--limit=96", "--is_naive=True", f"--weighting={name}", f"--data_dir={toy_root}", "--input_size=32",
            f"--output_dir={tmp_path}", "--run_name=w", "--image_check=exists"]
    t = Trainer(parse_config(script, [*argv, "--model=mini_xception"]))
    t.fit()
    import keras

    keras.utils.set_random_seed(1)  # the run's initial net
    start = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, input_size=32))
    last = load_model(tmp_path / script / "w" / "last.keras")
    for head in ("emotion_conv", "pose_conv"):
        assert not np.allclose(last.get_layer(head).get_weights()[0], start.get_layer(head).get_weights()[0]), head
    with open(tmp_path / script / "w" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    weights = [[float(r["weighting_weight_emotion"]), float(r["weighting_weight_pose"])] for r in rows]
    if name in ("uncertainty", "famo"):  # the learned weights moved away from where they started
        assert weights[-1] != pytest.approx([1.0, 1.0]) and weights[-1] != pytest.approx([0.5, 0.5])
    if name == "dwa":  # alternating epochs: each task's ratio of its own last two trained epochs
        assert len(t.weighting.history["emotion"]) == 2 and len(t.weighting.history["pose"]) == 2


def test_cagrad_leaves_agreeing_gradients_alone_and_improves_the_worst_task():
    from utils.weighting_cagrad import CAGrad

    cag = CAGrad(["a", "b"], [1, 1])
    same = tf.constant([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(cag.shared_gradient(same, None, BOTH).numpy(), [2.0, 0.0], atol=1e-4)
    g = tf.constant([[1.0, 0.0], [-0.9, 0.2]])  # strongly conflicting: the mean barely helps task b
    d = cag.shared_gradient(g, None, BOTH).numpy()
    mean = g.numpy().mean(0)
    assert min(g.numpy() @ d / 2) > min(g.numpy() @ mean)  # worst-case improvement is larger
