"""Head pose regressed in degrees (``--pose_kind degrees``): targets, loss, flips, pseudo labels, a run."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from utils.datasets import DataError, load_table
from utils.kinds import KINDS, kind_of
from utils.missing import FillInputs, strategy_for
from utils.pseudo_labels import PseudoConfig
from utils.targets import degree_rows
from utils.tasks import dataset_info, flip_permutations


def test_kinds_and_angle_columns_come_from_the_vocabulary():
    info = dataset_info("pointing04", pose_kind="degrees")
    assert info.vocab["pose"] == ("yaw", "pitch") and info.column("pose") == ("pan", "tilt")
    assert kind_of(info.vocab["pose"]).name == "degrees"
    assert kind_of(dataset_info("pointing04").vocab["pose"]).name == "classes"
    assert kind_of(dataset_info("utkface").vocab["age"]).name == "years"
    assert dataset_info("aflw2000", pose_kind="degrees").vocab["pose"] == ("yaw", "pitch", "roll")
    with pytest.raises(ValueError, match="no head-pose angles"):
        dataset_info("my_faces", columns=["full_path", "pose"], pose_kind="degrees")


def test_degree_rows_carry_the_weight_and_mask_missing_angles():
    rows = degree_rows(np.array([[10.0, -5.0], [np.nan, 3.0], [0.0, 0.0]]), np.array([1.0, 1.0, 0.5]))
    np.testing.assert_array_equal(rows, [[10, -5, 1], [0, 0, 0], [0, 0, 0.5]])  # 0 degrees is a label
    assert KINDS["classes"].rows(np.array([2, -1]), 5).shape == (2, 5)  # class labels stay one-hot
    assert KINDS["degrees"].rows(np.array([[1.0, 2.0]]), 3).shape == (1, 3)  # angles + the weight
    np.testing.assert_array_equal(KINDS["degrees"].labelled(np.array([[np.nan, 1.0], [0.0, 0.0]])), [False, True])


def test_angle_loss_is_the_weighted_mae_in_degree_units():
    from utils.losses import MaskedValueError, loss_for

    loss = loss_for(KINDS["degrees"])

    y = np.array([[10.0, 0.0, 1.0], [-20.0, 5.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
    p = np.array([[13.0, -1.0], [-20.0, 15.0], [90.0, 90.0]], np.float32)
    # row 0: mean |err| 2 at weight 1; row 1: 5 at weight 0.5; row 2 has no label
    expected = (2.0 * 1.0 + 5.0 * 0.5) / 2 / 30.0  # in units of 30 degrees
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-6)
    assert float(loss(np.zeros_like(y), p)) == 0.0
    metric = MaskedValueError()
    metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx((2.0 + 5.0) / 2)


def test_flip_negates_yaw_and_roll_not_pitch_nor_the_weight():
    import tensorflow as tf

    from utils.pipelines import flip_batch

    perms = {f"{t}_prediction": p for t, p in flip_permutations({"pose": ("yaw", "pitch", "roll")}).items()}
    images = tf.constant(np.random.default_rng(0).random((64, 2, 4, 1), np.float32))
    rows = degree_rows(np.tile([[30.0, -10.0, 5.0]], (64, 1)))
    out, y = flip_batch(images, {"pose_prediction": rows}, [5, 6], perms)
    flipped = np.all(out.numpy() == images.numpy()[:, :, ::-1], axis=(1, 2, 3))
    assert 10 < flipped.sum() < 54
    y = y["pose_prediction"].numpy()
    np.testing.assert_array_equal(y[flipped], np.tile([[-30.0, -10.0, -5.0, 1.0]], (flipped.sum(), 1)))
    np.testing.assert_array_equal(y[~flipped], rows[~flipped])


def test_a_mirror_images_outputs_map_back_to_the_original():
    from utils.tasks import POSE5, unflip

    perms = flip_permutations({"pose": POSE5, "angles": ("yaw", "pitch", "roll"), "gender": ("female", "male")})
    left = np.eye(5)[[POSE5.index("yaw -60..-10")]]  # the mirror image looks the other way
    np.testing.assert_array_equal(unflip(left, perms["pose"]), np.eye(5)[[POSE5.index("yaw +10..+60")]])
    np.testing.assert_array_equal(unflip([[30.0, -10.0, 5.0]], perms["angles"]), [[-30.0, -10.0, -5.0]])
    np.testing.assert_array_equal(unflip([[0.2, 0.8]], perms.get("gender")), [[0.2, 0.8]])  # unchanged


def test_angle_pseudo_labels_average_the_mirror_and_weight_by_agreement():
    values = np.array([[20.0, 4.0], [10.0, 0.0], [-40.0, 2.0]])
    mirrored = np.array([[-20.0, 4.0], [30.0, 0.0], [40.0, 12.0]])  # the mirror image's yaw has the other sign
    cfg = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5, distill_unselected=False)

    def fill(cfg):
        x = FillInputs("pose", KINDS["degrees"], 2, values, values, mirrored=mirrored, flip_signs=(-1.0, 1.0))
        return strategy_for(cfg).fill(x)

    assert strategy_for(cfg).needs({KINDS["degrees"]}) == {"mirror"}
    r = fill(cfg)
    gaps = np.array([0.0, (40 + 0) / 2, (0 + 10) / 2])  # mean |a(x) - s * a(flip x)| over the two angles
    w = np.exp(-gaps / KINDS["degrees"].agreement)
    np.testing.assert_allclose(r.weights, w / w.max(), rtol=1e-6)
    assert r.selected.tolist() == [True, False, True]  # the 0.5 quantile of the weights
    np.testing.assert_allclose(r.targets[:, :2], [[20, 4], [0, 0], [-40, 7]])  # the rejected row is masked
    np.testing.assert_allclose(r.targets[:, 2], np.where(r.selected, r.weights, 0.0), rtol=1e-6)
    kept = fill(PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, selection_threshold=0.5))
    np.testing.assert_allclose(kept.targets[1], [-10, 0, kept.weights[1]], rtol=1e-6)  # rejected: own value, weight
    distilled = fill(PseudoConfig(is_distilled=True))
    np.testing.assert_array_equal(distilled.targets, degree_rows(values))


def test_bad_angles_are_a_one_line_data_error(tmp_path):
    (tmp_path / "db").mkdir()
    imgs = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for img in imgs:
        img.write_bytes(b"\xff\xd8\xff" + b"0" * 20)
    pd.DataFrame({"full_path": list(map(str, imgs)), "pose": [0, 1], "pan": [0, 400], "tilt": [0, 0]}).to_csv(
        tmp_path / "db" / "pointing04_cleaned.csv", index=False)
    with pytest.raises(DataError, match=r"row 1 .*column 'pan' value '400' is not an angle"):
        load_table("pointing04", tmp_path, ["pose"], "exists", pose_kind="degrees")
    pd.DataFrame({"full_path": [str(imgs[0])], "pose": [0]}).to_csv(tmp_path / "db" / "pointing04_cleaned.csv",
                                                               index=False)
    with pytest.raises(DataError, match="missing label column 'pan'"):
        load_table("pointing04", tmp_path, ["pose"], "exists", pose_kind="degrees")


def test_a_degrees_run_reports_mae_per_angle_and_yaw_bins(toy_root, tmp_path):
    from models import load_model
    from utils.cli import main
    from utils.report import collect, find_runs, write_report

    argv = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--rounds=2", "--model=mini_xception",
            "--batch_size=32", "--image_check=exists", "--input_size=32", "--pose_kind=degrees",
            "--is_pesudo=True", "--is_pesudo_confidence=True", "--teacher_margin=-1",
            f"--data_dir={toy_root}", f"--output_dir={tmp_path}", "--run_name=deg"]
    assert main("ALTERNATIVE_EP", argv) == 0
    run = tmp_path / "ALTERNATIVE_EP" / "deg"
    test = json.loads((run / "test_metrics.json").read_text())["test"]["pose"]
    truth = load_table("toy_pose", toy_root, ["pose"], pose_kind="degrees")
    assert test["n"] == 24 and set(test["per_class_acc"]) == {"frontal", "yaw +10..+60", "yaw -60..-10",
                                                              "yaw <= -60", "yaw >= +60"}
    from utils.evaluate import evaluate, load_model_and_config

    net, config, _ = load_model_and_config(str(run), None)  # the run's test MAE, recomputed from its weights
    again, _ = evaluate(net, config, "toy_pose", "test", data_dir=toy_root)
    assert test["mae"] == pytest.approx(again["pose"]["mae"], rel=1e-5)
    m = KINDS["degrees"].metrics(np.array([[10.0, 0.0], [-30.0, 5.0]]), np.array([[14.0, 2.0], [-30.0, -1.0]]), 2)
    assert m["mae"] == pytest.approx(3.0) and m["mae_yaw"] == pytest.approx(2.0) and m["mae_pitch"] == 4.0
    assert abs(truth.labels["pose"]).max() > 30  # real angles, not bins
    model = load_model(run / "best.keras")
    assert model.output["pose_prediction"].shape[-1] == 1
    metrics = pd.read_csv(run / "metrics.csv")
    assert "val_pose_mae_yaw" in metrics and "pseudo_pose_mirror_gap_degrees" in metrics  # the flip agreement
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["class_names"]["pose"] == ["yaw"] and cfg["model_spec"]["regression"] == {"pose": 30.0}
    write_report(collect(find_runs([tmp_path])), tmp_path / "report")
    md = (tmp_path / "report" / "results.md").read_text()
    assert "pose (MAE, degrees)" in md and "(pose in degrees)" in md
    from utils.cli import parse_config

    stl = parse_config("STL_general_train", ["--dataset=pointing04", "--task_type=5", "--pose_kind=degrees"])
    assert stl.method_name() == "STL (pose) (pose in degrees)"  # never pooled with the 5-bin runs
    assert os.path.isfile(run / "confusion" / "test_pose.png")
