"""Short real training runs of the engine on tiny synthetic data (also the oneDNN regression test)."""
import csv
import json
import os

import numpy as np
import pytest

from utils.cli import main, parse_config
from utils.engine import PlateauControl, Trainer

FAST = ["--model=mini_xception", "--batch_size=32", "--image_check=exists"]


def rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def stl_trainer(toy_root, tmp_path, *flags):
    """An STL trainer on the toy emotion set and the list its checkpoints will append ``probe()`` to."""
    cfg = parse_config("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=2", *FAST, *flags,
                                             f"--data_dir={toy_root}", f"--output_dir={tmp_path}"])
    return Trainer(cfg)


def record_at_checkpoints(monkeypatch, probe) -> list:
    """Wrap the engine's checkpoint so that every finished epoch appends ``probe()`` (after its last step)."""
    import utils.engine.trainer as trainer_module

    seen, original = [], trainer_module.save_checkpoint

    def record(*args, **kwargs):
        seen.append(probe())
        original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", record)
    return seen


def only_run(out, script):
    (name,) = os.listdir(out / script)
    return out / script / name


def test_onednn_is_disabled_before_tensorflow_import():
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_stl_run_writes_a_complete_run_folder(toy_root, tmp_path):
    code = main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=2", *FAST,
                                      f"--data_dir={toy_root}", f"--output_dir={tmp_path}"])
    assert code == 0
    run = only_run(tmp_path, "STL_general_train")
    for name in ("config.json", "metrics.csv", "best.keras", "last.keras", "test_metrics.json"):
        assert (run / name).is_file(), name
    assert [p.name for p in run.glob("checkpoint-*.keras")] == ["checkpoint-001.keras"]  # older ones removed
    assert os.listdir(run / "tensorboard")
    for stem in ("epoch_001_emotion", "epoch_002_emotion", "test_emotion"):
        assert (run / "confusion" / f"{stem}.txt").is_file() and (run / "confusion" / f"{stem}.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == {"emotion": 7} and config["datasets"] == [["toy_emotion", ["emotion"]]]
    metrics = rows(run)
    assert [r["epoch"] for r in metrics] == ["1", "2"]  # the console's numbering
    assert all(np.isfinite(float(r["train_loss"])) for r in metrics)
    test = json.loads((run / "test_metrics.json").read_text())["test"]["emotion"]
    lines = (run / "confusion" / "test_emotion.txt").read_text().splitlines()
    matrix = np.array([[int(v) for v in line.split()[1:]] for line in lines[1:]])
    assert lines[1].startswith("angry") and matrix.sum() == 24 == test["n"]
    assert test["acc"] == pytest.approx(np.trace(matrix) / 24)  # the reported accuracy is the matrix's


def test_joint_pseudo_labels_log_selection_and_oracle_accuracy(toy_root, tmp_path):
    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=2", *FAST,
            "--is_pesudo=True", "--is_pesudo_confidence=True", "--is_pesudo_density=True",
            "--is_pesudo_distribution=True", "--cluster_k=2", "--selection_threshold=0.5", "--plot_pseudo=True",
            "--teacher_margin=-1",
            f"--data_dir={toy_root}", f"--output_dir={tmp_path}"]
    assert main("CONFUSION_EP_multitask", argv) == 0
    run = only_run(tmp_path, "CONFUSION_EP_multitask")
    assert sorted(p.name for p in (run / "pseudo").iterdir()) == [
        "epoch_002_emotion_tsne.png", "epoch_002_emotion_weights.png", "epoch_002_pose_tsne.png",
        "epoch_002_pose_weights.png"]
    metrics = rows(run)
    assert metrics[0]["phase"] == "joint" and not metrics[0].get("pseudo_pose_selected_share")  # warm-up
    share = float(metrics[1]["pseudo_pose_selected_share"])
    assert 0.45 <= share <= 0.6
    assert metrics[1]["teacher_pose_on"] == "1"
    r = {k: float(metrics[1][f"pseudo_emotion_{k}"]) for k in ("selected_share", "oracle_acc_all",
                                                               "oracle_acc_selected", "oracle_acc_rejected")}
    # metrics.csv keeps 6 digits
    assert r["oracle_acc_all"] == pytest.approx(r["selected_share"] * r["oracle_acc_selected"]
                                                + (1 - r["selected_share"]) * r["oracle_acc_rejected"], abs=1e-5)


def test_alternating_schedule_and_manifold_regularisers(toy_root, tmp_path):
    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=3", *FAST,
            "--is_distilled=True", "distill_t=2", f"--data_dir={toy_root}", f"--output_dir={tmp_path}"]
    assert main("ALTERNATIVE_EP", argv) == 0
    metrics = rows(only_run(tmp_path, "ALTERNATIVE_EP"))
    assert [r["phase"] for r in metrics] == ["joint", "toy_emotion", "toy_pose"]
    # each regulariser changes training compared with All-in-one at the same seed, by a material share
    base = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=1", *FAST, "--is_naive=True",
            "--limit=96", f"--data_dir={toy_root}", f"--output_dir={tmp_path}"]
    kernels, losses, shares = {}, {}, {}
    for name, flags in (("plain", ["--is_manifold=False"]), ("sfsmr", ["--is_lnorm=True", "--is_manifold=False"]),
                        ("slrm", ["--is_trace_norm=True", "--is_manifold=False"]),
                        ("laplacian", ["--is_manifold=True", "--manifold_weights=1"])):
        trainer = Trainer(parse_config("CONFUSION_EP_multitask_manifold", base + flags + [f"--run_name={name}"]))
        trainer.fit()
        kernels[name] = trainer.net.get_layer("pose_conv").get_weights()[0]
        row = rows(trainer.run.path)[0]
        losses[name], shares[name] = float(row["train_loss"]), float(row.get("train_penalty_share") or 0)
    for name in ("sfsmr", "slrm", "laplacian"):
        assert not np.allclose(kernels[name], kernels["plain"], atol=1e-6), name
        # same seed, same batches: the penalty is what raises the training loss, by more than 1 %
        assert losses[name] > 1.01 * losses["plain"] and shares[name] > 0, name


def test_teacher_predicts_with_dataset_statistics_and_leaves_the_model_as_it_was(toy_root, tmp_path):
    from utils.engine.batchnorm import pooled
    from utils.evaluation import predict
    from utils.pipelines import image_dataset

    cfg = parse_config("ALTERNATIVE_EP", ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", *FAST,
                                          "--is_pesudo=True", f"--data_dir={toy_root}", f"--output_dir={tmp_path}"])
    t = Trainer(cfg)
    t.setup()
    t.compile(1e-2)
    bn = t.probe.bn
    t.probe.per_dataset = t.probe.estimate()
    bn.set(pooled(t.probe.per_dataset))
    own, weights = bn.get(), t.net.get_weights()
    pose = t.splits[1].train  # labels pose only: the teacher fills emotion
    t.teacher.passed = {"emotion": 1, "pose": 1}
    fills, _ = t.teacher.fills_for([pose], epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(t.net.get_weights(), weights))
    assert all(np.array_equal(m, m2) and np.array_equal(v, v2) for (m, v), (m2, v2) in zip(bn.get(), own))
    bn.set(t.probe.per_dataset[1])  # what the teacher should have used: the pose dataset's own statistics
    probs = predict(t.probe.forward, image_dataset(pose.paths, 64, t.spec.input_size, t.spec.channels, t.cache))
    targets = fills[(0, "emotion")]
    rows = targets.sum(1) > 0
    assert rows.mean() > 0.5
    assert np.array_equal(targets[rows].argmax(1), probs["emotion_probs"][rows].argmax(1))


def test_plateau_lowers_the_learning_rate_then_stops():
    p = PlateauControl(patience=2, stop_patience=4)
    lr, log = 1e-3, []
    for v in [1.0, 0.9, 0.95, 0.96, 0.97, 0.98]:
        best, lr, stop = p.step(v, lr)
        log.append((best, lr, stop))
    assert log[1][0] and log[3][1] == pytest.approx(1e-4) and log[5][2] and not log[4][2]


def test_cosine_schedule_anneals_every_step(toy_root, tmp_path, monkeypatch):
    t = stl_trainer(toy_root, tmp_path, "--lr=0.01", "--lr_schedule=cosine", "--patience=1")
    seen = record_at_checkpoints(monkeypatch, lambda: float(np.array(t.learner.optimizer.learning_rate)))
    t.fit()
    logged = [float(r["lr"]) for r in rows(t.run.path)]
    steps = -(-len(t.splits[0].train) // 32)
    assert logged == pytest.approx([0.01, 0.005])  # cos(0), cos(pi / 2) at the epochs' starts
    assert seen[0] == pytest.approx(0.005 * (1 + np.cos(np.pi * (steps - 1) / steps / 2)), rel=1e-5)
    assert seen[1] == pytest.approx(0.005 * (1 + np.cos(np.pi * (1 + (steps - 1) / steps) / 2)), rel=1e-5)


def test_two_stage_freezing_really_freezes_then_unfreezes(toy_root, tmp_path, monkeypatch):
    t = stl_trainer(toy_root, tmp_path, "--is_freezing=True", "--no_freezing_epoch=1", "--patience=5")
    seen = record_at_checkpoints(monkeypatch, lambda: {w.path: np.array(w) for w in t.net.weights
                                                       if "stem_conv1" in w.path or "emotion_conv" in w.path})
    t.setup()
    start = {w.path: np.array(w) for w in t.net.weights}
    t.setup = lambda resume=False: None  # keep the model whose start weights were recorded
    t.fit()
    trunk = next(k for k in seen[0] if "stem_conv1" in k)
    head = next(k for k in seen[0] if "emotion_conv" in k and "kernel" in k)
    assert np.array_equal(seen[0][trunk], start[trunk])  # epoch 0: backbone frozen
    assert not np.array_equal(seen[0][head], start[head])  # ... heads trained
    assert not np.array_equal(seen[1][trunk], start[trunk])  # epoch 1: backbone unfrozen
    assert [r["frozen"] for r in rows(t.run.path)] == ["1", "0"]


def test_budget_and_phase_times_are_recorded_per_epoch(toy_root, tmp_path):
    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=3", "--batch_size=32",
            "--limit=64", "--model=mini_xception", "--is_naive=True", "--warmup_epochs=1", f"--data_dir={toy_root}",
            f"--output_dir={tmp_path}", "--run_name=b"]
    t = Trainer(parse_config("ALTERNATIVE_EP", argv))
    t.fit()
    metrics = rows(tmp_path / "ALTERNATIVE_EP" / "b")
    # epoch 1 joint (both tasks), epoch 2 emotion only, epoch 3 pose only
    assert [(float(r["passes_emotion"]), float(r["passes_pose"])) for r in metrics] == [(1, 1), (2, 1), (2, 2)]
    n_e, n_p = (len(sp.train) for sp in t.splits)
    expected = np.cumsum([-(-(n_e + n_p) // 32), -(-n_e // 32), -(-n_p // 32)])  # ceil per epoch's rows
    assert [int(r["steps"]) for r in metrics] == expected.tolist()
    assert int(t.learner.optimizer.iterations) == expected[-1]  # the optimizer made exactly those steps
    for r in metrics:  # the phases partition the epoch's time up to the checkpoint
        parts = sum(float(r[f"seconds_{k}"]) for k in ("targets", "fit", "bn", "eval"))
        assert abs(parts - float(r["seconds"])) < 0.05 and float(r["seconds_fit"]) > 0
        assert float(r["seconds_checkpoint"]) > 0


def test_lel_ltn_trains_its_transfer_network_on_true_labels_and_fills_from_it(toy_root, tmp_path):
    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=2", *FAST, "--limit=64",
            "--is_pesudo=True", "--is_LTN=True", "--teacher_margin=-1", f"--data_dir={toy_root}",
            f"--output_dir={tmp_path}", "--run_name=ltn"]
    t = Trainer(parse_config("CONFUSION_EP_multitask", argv))
    t.fit()
    assert {"emotion_ltn_prediction", "pose_ltn_prediction"} <= set(t.net.output_names)
    assert t.net.get_layer("label_embedding").table.shape == (12, 16)
    metrics = rows(t.run.path)
    assert float(metrics[1]["train_pose_ltn_prediction_loss"]) > 0
    paths, targets, _, _ = t.epoch_data(1)  # the transfer network never learns from filled rows
    emotion_rows = np.isin(paths, t.splits[0].train.paths)
    assert not targets["pose_ltn"][emotion_rows].any() and targets["pose"][emotion_rows].any()
    assert targets["pose_ltn"][~emotion_rows].sum() == (~emotion_rows).sum()
    # the pose rows of emotion faces are the transfer network's labels, not the pose head's
    out = t.probe.outputs(t.splits[0].train)
    filled = targets["pose"][emotion_rows].argmax(1)
    assert np.array_equal(filled, out["pose_ltn_probs"].argmax(1))
    assert not np.array_equal(filled, out["pose_probs"].argmax(1))


def test_dcn_ap_propagates_labels_from_every_labelled_row(toy_root, tmp_path):
    from utils.label_propagation import propagate
    from utils.mrf import mean_field

    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=1", *FAST,
            "--is_pesudo=True", "--is_MRF=True", "--ap_k=5", "--mrf_iterations=2", "--teacher_margin=-1",
            f"--data_dir={toy_root}", f"--output_dir={tmp_path}", "--run_name=ap"]
    t = Trainer(parse_config("CONFUSION_EP_multitask", argv))
    t.fit()
    assert t.missing.labelled_rows >= 2048  # all labelled rows here (it inherited MTL-SA's 512)
    trains = [sp.train for sp in t.splits]
    fills, stats = t.teacher.fills_for(trains, epoch=1)
    assert len(t.teacher.labelled_sample(trains[1])) == len(trains[1])  # every labelled pose row
    with t.probe.own_statistics():
        emo, pose = t.probe.outputs(trains[0]), t.probe.outputs(trains[1])
    p = t.cfg.pseudo
    probs = mean_field(propagate(pose["pose_features"], trains[1].labels["pose"], emo["pose_features"], 5,
                                 p.ap_k, p.ap_alpha, seed=p.seed), emo["pose_features"], p.mrf_k, p.mrf_strength,
                       p.mrf_iterations)
    rows_ = fills[(0, "pose")]
    labelled = rows_.sum(1) > 0
    assert labelled.all()  # q = 0: every emotion face gets a propagated pose label
    assert np.array_equal(rows_.argmax(1), probs.argmax(1))
    assert not np.array_equal(rows_.argmax(1), emo["pose_probs"].argmax(1))  # not the pose head's own labels
    hits = rows_.argmax(1) == trains[0].oracle["pose"]  # the hidden pose labels of the emotion faces
    assert stats["pseudo_pose_oracle_acc_all"] == pytest.approx(hits.mean())


def test_a_run_over_the_memory_budget_trains_from_the_disk_cache(toy_root, tmp_path, capsys):
    argv = ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", *FAST, "--cache_mb=0", "--limit=64",
            f"--data_dir={tmp_path / 'data'}", f"--output_dir={tmp_path}", "--run_name=d"]
    import shutil

    shutil.copytree(toy_root, tmp_path / "data", symlinks=True)
    assert main("STL_general_train", argv) == 0
    (cached,) = (tmp_path / "data" / "cache").glob("images-64x1-*.npy")
    assert "MB on disk (over --cache_mb=0)" in capsys.readouterr().out
    assert np.load(cached, mmap_mode="r").shape == (64, 64, 64, 1)  # the run's 64 images, decoded once
    assert (tmp_path / "STL_general_train" / "d" / "test_metrics.json").exists()


def test_class_balance_and_label_smoothing_act_on_true_labels_only(toy_root, tmp_path):
    from utils.targets import class_weights

    w = class_weights(np.array([0, 0, 0, 1, -1]), 3, 1.0)  # counts 3, 1, 0 (missing rows ignored)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == pytest.approx(1.0 / np.mean([w[0]] * 3 + [w[1]]))
    assert np.mean(w[[0, 0, 0, 1]]) == pytest.approx(1.0)  # the loss keeps its scale
    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=1", *FAST, "--limit=96",
            "--is_naive=True", "--class_balance=inverse", "--label_smoothing=0.1", f"--data_dir={toy_root}",
            f"--output_dir={tmp_path}"]
    t = Trainer(parse_config("CONFUSION_EP_multitask", argv))
    t.setup()
    paths, targets, _, _ = t.epoch_data(0)
    emotion = t.splits[0].train.labels["emotion"]
    rows = targets["emotion"][: len(emotion)]  # the emotion dataset's own rows come first
    expected = class_weights(emotion, 7, 1.0)[emotion]
    np.testing.assert_allclose(rows.sum(1), expected, rtol=1e-5)  # each row weighs its class's weight
    np.testing.assert_allclose(rows.min(1), expected * 0.1 / 7, rtol=1e-5)  # smoothed: eps / K off the label
    assert not targets["emotion"][len(emotion):].any()  # pose faces: still masked


def test_precise_bn_replaces_the_moving_averages_and_leaves_training_alone(toy_root, tmp_path):
    """--precise_bn: the saved model carries statistics estimated on the training images; the weights that
    training learns are the same as without it (BatchNorm trains on batch statistics either way)."""
    from models import load_model
    from utils.engine.batchnorm import BN_BATCH, BatchNormStats, joint_sample
    from utils.pipelines import image_dataset

    nets = {}
    for name, extra in (("moving", []), ("precise", ["--precise_bn"])):
        t = Trainer(parse_config("CONFUSION_EP_multitask", [
            "--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--epoch=2", "--limit=64", *FAST,
            "--is_augmentation=True", f"--data_dir={toy_root}", f"--output_dir={tmp_path}", f"--run_name={name}",
            *extra]))
        t.fit()
        nets[name] = load_model(tmp_path / "CONFUSION_EP_multitask" / name / "last.keras")
    moving, precise = nets["moving"], nets["precise"]
    for a, b in zip(moving.trainable_weights, precise.trainable_weights):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    bn_moving, bn_precise = BatchNormStats(moving), BatchNormStats(precise)
    assert not np.allclose(bn_moving.get()[0][0], bn_precise.get()[0][0])
    sample = joint_sample([sp.train.paths for sp in t.splits], t.cfg.seed)
    size, channels = moving.input_shape[1], moving.input_shape[3]
    expected = bn_moving.estimate(image_dataset(sample, BN_BATCH, size, channels, t.cache))
    for (m, v), (em, ev) in zip(bn_precise.get(), expected):  # the population statistics of the training mix
        np.testing.assert_allclose(m, em, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(v, ev, rtol=1e-4, atol=1e-4)
    assert "(precise BN)" in t.cfg.method_name()
