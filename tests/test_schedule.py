"""Equal budgets (rounds), round-end decisions, precise BatchNorm statistics and the teacher's gate."""
from types import SimpleNamespace

import numpy as np
import pytest

from utils.engine import Budget, Schedule
from utils.engine.batchnorm import BatchNormStats, pooled
from utils.engine.heads import make_heads
from utils.engine.teacher import Teacher
from utils.tasks import AGE_YEARS, EMOTION7, POSE5


def test_rounds_give_joint_and_alternating_runs_the_same_passes_and_steps():
    sizes = {"a": 1080, "b": 1080}
    tables = {k: SimpleNamespace(labels={k: None}) for k in sizes}
    result = {}
    for mode in ("joint", "alternating"):
        s = Schedule(mode, 2, warmup_epochs=1, epoch=64, rounds=6)
        budget = Budget(["a", "b"], 64)
        for e in range(s.epochs):
            ph = s.phase(e)
            trained = list(tables.values()) if ph == "joint" else [list(tables.values())[ph]]
            row = budget.add(sum(sizes[k] for k, t in tables.items() if t in trained), trained)
        result[mode] = (s.epochs, row)
    assert result["joint"][0] == 6 and result["alternating"][0] == 1 + 5 * 2
    assert result["joint"][1]["passes_a"] == result["alternating"][1]["passes_a"] == 6
    assert result["joint"][1]["passes_b"] == result["alternating"][1]["passes_b"] == 6
    assert abs(result["joint"][1]["steps"] - result["alternating"][1]["steps"]) <= 6  # rounding per dataset


def test_without_rounds_epoch_keeps_the_seed_lines_meaning():
    assert Schedule("alternating", 2, 1, epoch=64, rounds=None).epochs == 64
    assert Schedule("stl", 1, 1, epoch=5, rounds=None).epochs == 5


def test_decisions_only_at_the_end_of_a_round():
    s = Schedule("alternating", 2, warmup_epochs=1, epoch=6, rounds=None)
    assert [s.phase(e) for e in range(6)] == ["joint", 0, 1, 0, 1, 0]
    assert [s.round_end(e) for e in range(6)] == [True, False, True, False, True, True]  # last epoch decides
    assert s.rounds_done(2) == 2.0 and s.rounds_done(1) == 1.5
    joint = Schedule("joint", 2, 1, epoch=3, rounds=None)
    assert all(joint.round_end(e) for e in range(3))


def bn_model(momentum=0.99):
    import keras

    inp = keras.Input((3,))
    return keras.Model(inp, keras.layers.BatchNormalization(momentum=momentum, name="bn")(inp))


def test_precise_statistics_are_the_population_mean_and_variance():
    import tensorflow as tf

    x = np.random.default_rng(0).normal([1.0, -2.0, 5.0], [1.0, 3.0, 0.5], (300, 3)).astype(np.float32)
    model = bn_model()
    stats = BatchNormStats(model)
    before = stats.get()
    (mean, var), = stats.estimate(tf.data.Dataset.from_tensor_slices(x).batch(64))  # uneven last batch
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(stats.get()[0], before[0]))  # model left unchanged
    assert model.get_layer("bn").momentum == 0.99
    # an exponential average over the same five batches would still sit near the start values
    model.get_layer("bn").moving_mean.assign(np.zeros(3))
    for b in tf.data.Dataset.from_tensor_slices(x).batch(64):
        model(b, training=True)
    assert abs(float(model.get_layer("bn").moving_mean[2])) < 0.3 * 5.0


def test_pooled_statistics_equal_those_of_the_concatenated_datasets():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (500, 4)), rng.normal(3, 2, (500, 4))
    (mean, var), = pooled([[(a.mean(0), a.var(0))], [(b.mean(0), b.var(0))]])
    both = np.concatenate([a, b])
    np.testing.assert_allclose(mean, both.mean(0))
    np.testing.assert_allclose(var, both.var(0))


def test_the_teacher_gate_opens_once_a_task_beats_chance_by_the_margin():
    from utils.missing import strategy_for
    from utils.pseudo_labels import PseudoConfig

    heads = make_heads({"emotion": EMOTION7, "pose": POSE5, "age": AGE_YEARS}, {}, "auto", "mini_xception")
    teacher = Teacher(strategy_for(PseudoConfig(is_pesudo=True)), heads, [], None, margin=0.1, warmup=1, seed=1,
                      mae_of_mean={"age": 10.0})
    teacher.update_gate({"emotion": {"balanced_acc": 0.2}, "pose": {"balanced_acc": 0.29},
                         "age": {"balanced_acc": 0.0, "mae": 9.5}}, epoch=0)
    assert teacher.passed == {}  # 0.057, 0.09 and 5 % above chance
    teacher.update_gate({"emotion": {"balanced_acc": 0.3}, "pose": {"balanced_acc": 0.31},
                         "age": {"balanced_acc": 0.0, "mae": 8.5}}, epoch=1)
    assert teacher.passed == {"emotion": 2, "pose": 2, "age": 2}
    teacher.update_gate({"emotion": {"balanced_acc": 0.1}}, epoch=2)
    assert teacher.passed["emotion"] == 2  # stays open


@pytest.mark.parametrize("mode", ["per_dataset", "mixed"])
def test_alternating_run_estimates_each_datasets_statistics(mode, toy_root, tmp_path):
    from utils.cli import parse_config
    from utils.engine import Trainer

    cfg = parse_config("ALTERNATIVE_EP", [
        "--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--model=mobilenetv2", "--input_size=32",
        "--batch_size=32", "--limit=96", "--rounds=2", "--is_naive=True", f"--bn_stats={mode}",
        f"--data_dir={toy_root}", f"--output_dir={tmp_path}", "--image_check=exists"])
    t = Trainer(cfg)
    t.fit()
    assert t.cfg.bn_stats == mode and t.schedule.epochs == 3 and cfg.run_name is None  # given config untouched
    t.probe.refresh(mode)
    if mode == "mixed":
        assert t.probe.per_dataset is None
        return
    emo, pose = t.probe.per_dataset
    assert not np.allclose(emo[0][0], pose[0][0])  # the two synthetic styles normalise differently
    for (m, v), (m_mix, v_mix) in zip(pooled([emo, pose]), t.probe.bn.get()):
        np.testing.assert_allclose(m, m_mix, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v, v_mix, rtol=1e-4, atol=1e-6)
    assert t.probe.statistics_for(t.splits[1].valid) is pose
    import json

    from utils.evaluate import evaluate, load_model_and_config

    net, config, _ = load_model_and_config(str(t.run.path), None)  # evaluate.py reproduces the run's test numbers
    metrics, _ = evaluate(net, config, "toy_pose", "test", data_dir=toy_root)
    saved = json.loads((t.run.path / "test_metrics.json").read_text())["test"]["pose"]
    assert metrics["pose"]["acc"] == saved["acc"]
    # the run fingerprints its parts; a part rebuilt from other images (another conversion) is named
    import logging

    from utils.datasets import parts_digest

    assert config["split_digest"]["toy_pose"]["test"] == parts_digest(t.splits[1].test.paths)
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    assert config["code"]["commit"] == head  # the run names its code (None outside a git checkout)
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger("utils.evaluate").addHandler(handler)
    try:
        evaluate(net, config, "toy_pose", "test", data_dir=toy_root)
        assert not seen
        config["split_digest"]["toy_pose"]["test"] = parts_digest(t.splits[1].valid.paths)
        evaluate(net, config, "toy_pose", "test", data_dir=toy_root)
    finally:
        logging.getLogger("utils.evaluate").removeHandler(handler)
    assert len(seen) == 1 and "not the one the run recorded" in seen[0].getMessage()
