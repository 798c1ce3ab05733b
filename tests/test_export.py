"""Exports (SavedModel, TFLite, ONNX) return what the Keras model returns on real face crops."""
import numpy as np
import pytest

from models import ModelSpec, build_net
from utils.demo_samples import sample_photo
from utils.export import export
from utils.faces import detect, face_crop, make_detector
from utils.runtime import RuntimeError_, match_outputs


@pytest.fixture(scope="module")
def faces():
    """Real face crops at 48 px grey: the astronaut, mirrored and shifted copies (8 crops)."""
    import cv2

    rgb = sample_photo()
    (face,) = detect(make_detector("mtcnn"), rgb)
    crops = []
    for dx in (-6, -2, 2, 6):
        for flip in (False, True):
            shifted = type(face)(face.box, face.score, face.landmarks + np.float32([dx, 0]))
            c = cv2.cvtColor(face_crop(rgb, shifted, 48), cv2.COLOR_RGB2GRAY)
            crops.append(c[:, ::-1] if flip else c)
    return np.stack(crops).astype(np.float32)[..., None]


def test_float_exports_match_keras_within_1e4(faces, tmp_path):
    pytest.importorskip("tf2onnx", reason="ONNX export needs tf2onnx")
    model = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5, "gender": 2, "age": 101}, input_size=48))
    report = export(model, tmp_path, ["savedmodel", "tflite", "onnx"], faces)
    for fmt in ("savedmodel", "tflite", "onnx"):
        assert report[fmt]["max_abs_diff"] < 1e-4, (fmt, report[fmt])
        assert all(v == 1.0 for v in report[fmt]["top1_agreement"].values())
    assert (tmp_path / "model.tflite").stat().st_size > 10_000 and (tmp_path / "model.onnx").is_file()


def test_outputs_are_matched_by_name_then_by_class_count():
    ref = {"emotion_prediction": 7, "gender_prediction": 2}
    got = match_outputs(ref, {"StatefulPartitionedCall:0": np.ones((2, 2)), "x:1": np.full((2, 7), 2.0)})
    assert got["emotion_prediction"][0, 0] == 2.0 and got["gender_prediction"][0, 0] == 1.0
    with pytest.raises(RuntimeError_, match="no output for 'gender_prediction'"):
        match_outputs(ref, {"only": np.zeros((2, 7))})


def test_evaluate_reproduces_the_keras_numbers_on_the_tflite_export(toy_root, tmp_path):
    """utils/evaluate.py on a .tflite (it crashed: 'TFLiteModel' object has no attribute 'input_shape')."""
    import json

    from utils.cli import main as train_main
    from utils.evaluate import main as evaluate_main

    assert train_main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                                            "--input_size=32", "--limit=96", f"--data_dir={toy_root}",
                                            f"--output_dir={tmp_path}", "--run_name=r"]) == 0
    run = tmp_path / "STL_general_train" / "r"
    from models import load_model

    export(load_model(run / "best.keras"), run, ["tflite"], np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)))
    out = {}
    for fmt in ("keras", "tflite"):
        model = run / ("best.keras" if fmt == "keras" else "model.tflite")
        assert evaluate_main(["--model", str(model), "--dataset", "toy_emotion", "--data_dir", str(toy_root),
                              "--split", "test", "--out", str(tmp_path / fmt)]) == 0
        out[fmt] = json.loads((tmp_path / fmt / "metrics.json").read_text())["metrics"]["emotion"]
    assert out["tflite"]["n"] == out["keras"]["n"] == 20
    assert out["tflite"]["acc"] == out["keras"]["acc"]
    saved = json.loads((run / "test_metrics.json").read_text())["test"]["emotion"]
    assert out["keras"]["acc"] == saved["acc"]  # the run's own test split, reproduced

    def evaluated(name, *flags):
        assert evaluate_main(["--model", str(run / "model.tflite"), "--dataset", "toy_emotion", "--data_dir",
                              str(toy_root), "--split", "test", "--out", str(tmp_path / name), *flags]) == 0
        return json.loads((tmp_path / name / "metrics.json").read_text())["metrics"]["emotion"]

    mirror = evaluated("mirror", "--flip")  # the config names no views: the mirror image alone
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "test_views": {"emotion": "scales"}}))
    assert evaluated("flip_only", "--views", "flip") == mirror  # --views flip ignores the config's arms
    assert evaluated("none", "--views", "none") == out["tflite"]
    with pytest.raises(SystemExit):
        evaluate_main(["--model", str(run / "model.tflite"), "--dataset", "toy_emotion", "--flip", "--views", "none"])


def test_test_time_flip_maps_the_mirror_images_yaw_bins_back(toy_root):
    """``--flip`` averages each output with the mirror image's, the yaw bins of the mirror swapped back."""
    import keras

    from models import ModelSpec, build_net
    from utils.evaluate import predictions, view_predictions

    keras.utils.set_random_seed(0)
    net = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, input_size=32))
    plain, table, _ = predictions(net, {}, "toy_pose", "all", ["pose"], toy_root)
    both, _, _ = predictions(net, {}, "toy_pose", "all", ["pose"], toy_root, flip=True)
    views, _, _ = view_predictions(net, {}, "toy_pose", "all", ["pose"], toy_root, flip=True)
    assert views["pose"].shape == (2, len(table.paths), 5)  # the face's view, then the mirror image's
    np.testing.assert_allclose(views["pose"][0], plain["pose"], atol=1e-6)
    np.testing.assert_allclose(views["pose"].mean(0), both["pose"], atol=1e-6)
    mirrored = 2 * both["pose"] - plain["pose"]  # what the mirror images gave, after the swap
    from utils.evaluation import predict
    from utils.pipelines import ImageCache, image_dataset

    cache = ImageCache(table.paths, 32, 1)  # the evaluator's decoding (uint8 after resizing)
    raw = predict(net, image_dataset(table.paths, 64, 32, 1, cache).map(lambda x: x[:, :, ::-1, :]))
    raw = raw["pose_prediction"]
    np.testing.assert_allclose(mirrored, raw[:, [0, 2, 1, 4, 3]], atol=1e-5)  # +10..+60 <-> -60..-10, etc.
    assert not np.allclose(mirrored, raw, atol=1e-3)


def test_a_head_named_in_test_views_averages_over_its_arm_and_the_others_keep_the_flip(toy_root):
    """``--flip`` reads the model's config: the named head's arm of views (utils/views.py), the rest flip."""
    import keras

    from models import ModelSpec, build_net
    from utils.datasets import DataError
    from utils.evaluate import view_predictions
    from utils.evaluation import predict
    from utils.pipelines import ImageCache, image_dataset
    from utils.views import ARMS, view

    keras.utils.set_random_seed(0)
    net = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, input_size=32))
    flip, table, _ = view_predictions(net, {}, "toy_pose", "all", ["pose"], toy_root, flip=True)
    views, _, _ = view_predictions(net, {"test_views": {"pose": "scales"}}, "toy_pose", "all", ["pose"], toy_root,
                                   flip=True)
    assert views["pose"].shape == (6, len(table.paths), 5)  # three views, each with its mirror image
    np.testing.assert_allclose(views["pose"][2:4], flip["pose"], atol=1e-6)  # the crop itself, as with flip
    pixels = np.concatenate([b.numpy() for b in image_dataset(table.paths, 64, 32, 1, ImageCache(table.paths, 32, 1))])
    zoomed = predict(net, [view(pixels, *ARMS["scales"][0])])["pose_prediction"]  # the 0.95 zoom-in
    np.testing.assert_allclose(views["pose"][0], zoomed, atol=1e-5)
    assert not np.allclose(views["pose"][0], flip["pose"][0], atol=1e-3)
    with pytest.raises(DataError, match="unknown arms"):
        view_predictions(net, {"test_views": {"pose": "zooms"}}, "toy_pose", "all", ["pose"], toy_root, flip=True)
