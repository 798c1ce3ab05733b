"""The one training step (utils/engine/step.py): its arithmetic against hand-made references."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from utils.engine.heads import Objective
from utils.engine.step import MultiTaskLearner
from utils.kinds import KINDS
from utils.losses import loss_for
from utils.weighting import make_weighting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_net(decay: float = 0.0):
    """A shared dense trunk and two softmax heads 'a' (3 classes) and 'b' (2)."""
    import keras

    keras.utils.set_random_seed(4)
    reg = keras.regularizers.L2(decay) if decay else None
    inp = keras.Input((4,), name="image")
    h = keras.layers.Dense(5, activation="tanh", kernel_regularizer=reg, name="trunk")(inp)
    out = {f"{t}_prediction": keras.layers.Dense(n, activation="softmax", name=f"{t}_prediction")(h)
           for t, n in (("a", 3), ("b", 2))}
    return keras.Model(inp, out)


def batch(present_b: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = {"a_prediction": np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)],
         "b_prediction": np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)] * float(present_b)}
    return x, y


def learner(net, name: str, weights=(1.0, 2.0)):
    import keras

    ce = loss_for(KINDS["classes"])
    objs = [Objective(f"{t}_prediction", KINDS["classes"], ce, w) for t, w in zip("ab", weights)]
    shared = {v.path for v in net.get_layer("trunk").trainable_weights}
    lrn = MultiTaskLearner(net, objs, make_weighting(name, ["a", "b"], list(weights)), shared, "trunk/kernel")
    lrn.compile(optimizer=keras.optimizers.SGD(1.0))
    return lrn


def test_the_fixed_strategy_step_is_keras_compiled_step_exactly():
    import keras

    x, y = batch()
    reference = tiny_net(decay=0.01)
    reference.compile(optimizer=keras.optimizers.SGD(0.1), loss={k: loss_for(KINDS["classes"]) for k in y},
                      loss_weights={"a_prediction": 1.0, "b_prediction": 2.0})
    ours = learner(tiny_net(decay=0.01), "fixed")
    ours.optimizer.learning_rate.assign(0.1)
    h_ref = reference.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    for a, b in zip(reference.get_weights(), ours.net.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit: the same arithmetic in the same order
    assert h_ours["loss"] == h_ref["loss"]
    assert h_ours["b_prediction_loss"] == h_ref["b_prediction_loss"]


@pytest.mark.parametrize("seed", [0, 1])  # batches whose task gradients agree (0) and conflict (1)
def test_pcgrad_step_projects_the_trunk_gradient_and_leaves_heads_their_own(seed):
    x, y = batch(seed=seed)
    lrn = learner(tiny_net(decay=0.05), "pcgrad")  # an L2 penalty on the trunk's kernel
    net = lrn.net
    trunk = net.get_layer("trunk").trainable_weights  # kernel and bias: the shared parameters
    head_a = net.get_layer("a_prediction").kernel
    with tf.GradientTape(persistent=True) as tape:
        pred = net(x, training=True)
        la = loss_for(KINDS["classes"])(y["a_prediction"], pred["a_prediction"])
        lb = loss_for(KINDS["classes"])(y["b_prediction"], pred["b_prediction"])
    ga, gb = (np.concatenate([g.numpy().ravel() for g in tape.gradient(loss, trunk)]) for loss in (la, lb))
    expected = ga.copy()
    if ga @ gb < 0:
        expected = ga - (ga @ gb) / (gb @ gb) * gb
    other = gb - (gb @ ga) / (ga @ ga) * ga if ga @ gb < 0 else gb
    kernel = net.get_layer("trunk").kernel.numpy()
    decay = np.concatenate([2 * 0.05 * kernel.ravel(), np.zeros(5)])  # the penalty's gradient (bias: none)
    expected = expected + other + decay  # PCGrad (Yu et al. 2020, Alg. 1) for two tasks, plus the penalty
    g_head = tape.gradient(la, head_a).numpy()  # the head of a: its own loss at its weight 1
    flat = lambda: np.concatenate([v.numpy().ravel() for v in trunk])  # noqa: E731
    before_trunk, before_head = flat(), head_a.numpy().copy()
    lrn.train_step((tf.constant(x), {k: tf.constant(v) for k, v in y.items()}))
    np.testing.assert_allclose(before_trunk - flat(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(before_head - head_a.numpy(), g_head, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["dwa", "uncertainty", "gradnorm"])
def test_an_alternating_batch_gives_its_one_task_the_full_step(name):
    """A batch that labels only task a (an alternating epoch) steps as task a's own loss at weight 1 would:
    the absent task's zero loss must not take a share of the weights (DWA gave a 0.755 there)."""
    x, y = batch(present_b=False)
    lrn = learner(tiny_net(), name, weights=(1.0, 1.0))
    w = lrn.weighting.weights([tf.constant(1.0), tf.constant(0.0)], tf.constant([True, False])).numpy()
    if name == "dwa":
        lrn.weighting.epoch_end({"a": 1.0, "b": 2.0})
        lrn.weighting.epoch_end({"a": 0.5})  # an alternating epoch trained only a: b keeps its history
        assert lrn.weighting.history == {"a": [1.0, 0.5], "b": [2.0]}
        w = lrn.weighting.weights([tf.constant(1.0), tf.constant(0.0)], tf.constant([True, False])).numpy()
        assert w[0] == pytest.approx(1.0)
    assert w[0] == pytest.approx(1.0)
    kernel = lrn.net.get_layer("a_prediction").kernel
    with tf.GradientTape() as tape:
        la = loss_for(KINDS["classes"])(y["a_prediction"], lrn.net(x, training=True)["a_prediction"])
    expected = kernel.numpy() - tape.gradient(la, kernel).numpy()
    lrn.train_step((tf.constant(x), {k: tf.constant(v) for k, v in y.items()}))
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_strategies_keep_their_state_across_a_checkpoint():
    for name in ("uncertainty", "dwa", "gradnorm", "famo"):
        a = make_weighting(name, ["a", "b"], [1.0, 1.0])
        for v in a._state_variables():
            v.assign(v + np.float32(0.3))
        a.epoch_end({"a": 1.0, "b": 0.5})
        b = make_weighting(name, ["a", "b"], [1.0, 1.0])
        b.load_state_dict(json.loads(json.dumps({k: v.tolist() if hasattr(v, "tolist") else v
                                                 for k, v in a.state_dict().items()})))
        assert a.state() == b.state(), name
        assert getattr(a, "history", None) == getattr(b, "history", None)


MULTIWORKER = r"""
import json, os, sys
sys.path.insert(0, {root!r})
import utils  # the TensorFlow switches
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: one local worker
from utils.engine.distribution import MultiWorkerEpoch
from utils.engine.heads import make_heads, objectives
from utils.engine.step import MultiTaskLearner
from utils.kinds import expected_value
from utils.tasks import AGE_VALUE, AGE_YEARS, GENDER2
years = {years!r}
from utils.weighting import make_weighting
heads = make_heads({{"gender": GENDER2, "age": AGE_YEARS if years else AGE_VALUE, "pose": ("yaw", "pitch")}}, {{}},
                   "auto", "x")
rng = np.random.default_rng(0)
n = 32
x = rng.normal(size=(n, 6)).astype(np.float32)
y = {{"gender_prediction": np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)],
      "age_prediction": (np.eye(101, dtype=np.float32)[rng.integers(0, 101, n)] if years
                         else np.c_[rng.uniform(0, 100, n), np.ones(n)].astype(np.float32)),
      "pose_prediction": np.c_[rng.uniform(-60, 60, (n, 2)), np.ones(n)].astype(np.float32)}}
with strategy.scope():
    keras.utils.set_random_seed(1)
    inp = keras.Input((6,), name="image")
    h = keras.layers.Dense(8, activation="relu", name="trunk")(inp)
    out = {{"gender_prediction": keras.layers.Dense(2, activation="softmax", name="gender_prediction")(h),
           "age_prediction": (keras.layers.Dense(101, activation="softmax", name="age_prediction")(h) if years
                              else keras.layers.Rescaling(10.0, name="age_prediction")(keras.layers.Dense(1)(h))),
           "pose_prediction": keras.layers.Rescaling(30.0, name="pose_prediction")(keras.layers.Dense(2)(h))}}
    net = keras.Model(inp, out)
    learner = MultiTaskLearner(net, objectives(heads, []), make_weighting("fixed", list(heads), [1.0] * 3), set())
    learner.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: the losses are those of these weights
pred = net(x)
expected = {{h.key: float(h.loss(y[h.key], pred[h.key])) for h in heads.values()}}
ce = lambda k: float(-np.mean(np.log(np.sum(y[k] * pred[k], 1))))
l1 = float(np.mean(np.abs(np.asarray(pred["pose_prediction"]) - y["pose_prediction"][:, :2])) / 30)
age_l1 = float(np.mean(np.abs(np.asarray(pred["age_prediction"]) - y["age_prediction"][:, :1])) / 10)
manual = {{"gender_prediction": ce("gender_prediction"), "age_prediction": ce("age_prediction") if years else age_l1,
          "pose_prediction": l1}}
make = lambda batch, shard, steps: tf.data.Dataset.from_tensor_slices((x, y)).shard(*shard).batch(batch).take(steps)
hist = MultiWorkerEpoch(strategy)(learner, make, n, n, 0)
print(json.dumps({{"hist": {{k: v[0] for k, v in hist.items()}}, "expected": expected, "manual": manual}}))
"""


@pytest.mark.parametrize("years", [True, False], ids=["age_years", "age_value"])
def test_the_multiworker_path_gives_every_task_kind_its_own_loss(years):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    res = subprocess.run([sys.executable, "-c", MULTIWORKER.format(root=ROOT, years=years)], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("gender_prediction", "age_prediction", "pose_prediction"):
        assert out["hist"][f"{key}_loss"] == pytest.approx(out["expected"][key], rel=1e-5), key
        assert out["expected"][key] == pytest.approx(out["manual"][key], rel=1e-4), key  # CE, years or L1, L1
    assert out["hist"]["pose_prediction_mae"] == pytest.approx(out["manual"]["pose_prediction"] * 30, rel=1e-4)
