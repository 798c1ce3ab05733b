"""Dataset converters on the real samples (when present) and on fixtures in each native format."""
import re
import sqlite3
from collections import Counter

import cv2
import numpy as np
import pandas as pd
import scipy.io
from conftest import shared_sample

from data.prep_data import main as prep_main
from data.sources import adience, aflw, aflw2000, expw, fer2013, ferplus, fgnet, imdb_wiki, pointing04, sfew, utkface
from utils.datasets import load_table
from utils.tasks import yaw_to_pose, years_to_group


def face_jpg(path, side=80):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((side, side, 3), 120, np.uint8)
    cv2.circle(img, (side // 2, side // 2), side // 3, (200, 180, 160), -1)
    cv2.imwrite(str(path), img)


# ------------------------------------------------------------------ real samples
def test_expw_real_sample(tmp_path):
    root = shared_sample("expw_sample")
    csv, n, report = expw.convert(root, tmp_path, size=64)
    lines = [ln.split() for ln in (root / "label" / "label.lst").read_text().splitlines() if ln.strip()]
    assert n == len(lines) == 748 and not report.skipped
    t = load_table(str(csv))
    assert Counter(t.labels["emotion"].tolist()) == Counter(int(ln[7]) for ln in lines)
    assert len(set(t.paths)) == n  # one crop per face, even when a photo has several


def test_pointing04_real_sample(tmp_path):
    root = shared_sample("pointing04_sample")
    csv, n, report = pointing04.convert(root, tmp_path, size=64)
    names = sorted(p.stem for p in root.rglob("*.jpg"))
    assert n == len(names) == 1860
    pans = [int(re.match(r"person\d{5}[+-]\d+([+-]\d+)", s).group(1)) for s in names]
    t = load_table(str(csv))
    assert Counter(t.labels["pose"].tolist()) == Counter(yaw_to_pose(p) for p in pans)
    assert len(set(t.groups)) == 10 and t.group_kind == "subject"


def test_utkface_real_sample_reports_malformed_names(tmp_path):
    root = shared_sample("utkface_sample")
    csv, n, report = utkface.convert(root, tmp_path, size=64)
    files = [p.name for p in root.rglob("*.jpg")]
    malformed = [f for f in files if utkface.parse_name(f) is None]
    assert len(malformed) == 4 and n == len(files) - 4
    assert report.skipped["malformed file name (expected age_gender_race_date.jpg)"] == 4
    frame = pd.read_csv(csv)
    female_utk = sum(1 for f in files if utkface.parse_name(f) and f.split("_")[1] == "1")
    assert (frame.gender == 0).sum() == female_utk  # UTKFace 1 = female -> our 0


def test_fgnet_real_sample(tmp_path):
    root = shared_sample("fgnet_sample")
    csv, n, _ = fgnet.convert(root, tmp_path, size=64)
    t = load_table(str(csv))
    assert n == 498 and len(set(t.groups)) == 40
    frame = pd.read_csv(csv)
    assert frame.age_years.between(0, 69).all() and (frame.age == frame.age_years.map(years_to_group)).all()


def test_aflw2000_real_sample(tmp_path):
    root = shared_sample("aflw2000_sample")
    csv, n, _ = aflw2000.convert(root, tmp_path, size=64)
    frame = pd.read_csv(csv)
    assert n == 16
    yaw = np.degrees(scipy.io.loadmat(root / "image00050.mat")["Pose_Para"][0][1])
    assert abs(frame.yaw.iloc[0] - yaw) < 0.01 and frame.pose.iloc[0] == yaw_to_pose(yaw)


def test_adience_real_fold_file_ages_and_genders(tmp_path):
    root = shared_sample("adience_labels")
    csv, n, report = adience.convert(root, tmp_path, images=False)
    raw = pd.read_csv(root / "fold_0_data.txt", sep="\t", dtype=str, keep_default_na=False)
    usable = raw[raw.gender.isin(["f", "m"]) & raw.age.map(lambda a: adience.parse_age(a) is not None)]
    assert n == len(usable) and n + sum(report.skipped.values()) == len(raw)
    unparsable = ((raw.age == "None") & raw.gender.isin(["f", "m"])).sum()
    assert report.skipped["age missing or unparsable (None)"] == unparsable
    frame = pd.read_csv(csv)
    assert frame.age.between(0, 7).all() and set(frame.fold) == {0}
    mapped = dict(zip(frame.age_text, frame.age))
    assert mapped["(25, 32)"] == 4 and mapped["(38, 43)"] == 5 and mapped["(0, 2)"] == 0
    assert mapped.get("(38, 48)", 5) == 5 and mapped.get("35", 5) == 5


def test_ferplus_real_labels_with_fer2013_rows(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "fer2013new.csv").write_bytes((shared_sample("ferplus_labels") / "fer2013new.csv").read_bytes())
    (root / "fer2013.csv").write_bytes((shared_sample("fer2013_rows") / "fer2013.csv").read_bytes())
    csv, n, report = ferplus.convert(root, tmp_path / "out")
    labels = pd.read_csv(root / "fer2013new.csv", keep_default_na=False)
    assert n + sum(report.skipped.values()) == len(labels)
    votes = labels[ferplus.VOTES].to_numpy()
    first = votes[:len(pd.read_csv(root / "fer2013.csv"))]  # rows that have FER2013 pixels in the sample
    ok = [(labels["Image name"][i] != "" and v.argmax() < 8 and (v == v.max()).sum() == 1) for i, v in enumerate(first)]
    assert n == sum(ok)
    assert report.skipped["majority vote is unknown / not a face"] > 0
    frame = pd.read_csv(csv)
    assert (frame.emotion.to_numpy() == first[np.array(ok)].argmax(1)).all()


# ------------------------------------------------------------------ native-format fixtures
def test_fer2013_csv_fixture_counts_bad_rows(tmp_path):
    pix = " ".join(["128"] * 48 * 48)
    rows = ["emotion,pixels,Usage", f"3,{pix},Training", f"5,{pix},PublicTest", f"0,{pix},PrivateTest",
            "9," + pix + ",Training", "2,1 2 3,Training"]
    (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
    csv, n, report = fer2013.convert(tmp_path, tmp_path / "out")
    assert n == 3 and list(pd.read_csv(csv).split) == ["train", "valid", "test"]
    assert report.skipped == Counter({"emotion label out of range 0..6": 1, "corrupt pixels field": 1})


def test_sfew_folder_fixture(tmp_path):
    for split in ("Train", "Val"):
        for cls in ("Happy", "Sad"):
            face_jpg(tmp_path / split / f"{split}_Aligned_Faces" / cls / f"{cls}_1.png")
    (tmp_path / "Train" / "Train_Aligned_Faces" / "Bored").mkdir()
    csv, n, report = sfew.convert(tmp_path, tmp_path / "out")
    frame = pd.read_csv(csv)
    assert n == 4 and sorted(frame.emotion) == [3, 3, 4, 4] and sorted(set(frame.split)) == ["train", "valid"]
    assert report.skipped["unknown class folder"] == 1


def test_aflw_sqlite_fixture(tmp_path):
    db = sqlite3.connect(tmp_path / "aflw.sqlite")
    db.executescript("""
        CREATE TABLE Faces (face_id INTEGER, file_id TEXT);
        CREATE TABLE FaceImages (file_id TEXT, filepath TEXT, width INTEGER, height INTEGER);
        CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
        INSERT INTO Faces VALUES (1, 'a'), (2, 'a'), (3, 'b'), (4, 'c');
        INSERT INTO FaceImages VALUES ('a', '0/a.jpg', 80, 80), ('b', '0/b.jpg', 80, 80),
                                      ('c', '0/missing.jpg', 80, 80);
        INSERT INTO FaceRect VALUES (1, 5, 5, 30, 30, 1), (2, 40, 40, 30, 30, 1), (4, 0, 0, 10, 10, 1);
        INSERT INTO FacePose VALUES (1, 0, 0, 0.5, 1), (2, 0, 0, -1.2, 1), (3, 0, 0, 0, 1), (4, 0, 0, 0, 1);
    """)
    db.commit()
    face_jpg(tmp_path / "flickr" / "0" / "a.jpg")
    face_jpg(tmp_path / "flickr" / "0" / "b.jpg")
    csv, n, report = aflw.convert(tmp_path, tmp_path / "out")
    frame = pd.read_csv(csv)
    assert n == 2 and list(frame.pose) == [yaw_to_pose(np.degrees(0.5)), 3] and frame.full_path.nunique() == 2
    assert report.skipped == Counter({"no FaceRect": 1, "missing image": 1})


def test_adience_fixture_with_images_and_odd_ages(tmp_path):
    header = "\t".join(adience.COLUMNS)
    lines = [header,
             "u1\timg1.jpg\t1\t(25, 32)\tf\t0\t0\t10\t10\t0\t0\t50",
             "u1\timg2.jpg\t2\t(8, 23)\tm\t0\t0\t10\t10\t0\t0\t50",
             "u2\timg3.jpg\t3\tNone\tf\t0\t0\t10\t10\t0\t0\t50",
             "u2\timg4.jpg\t4\t35\tu\t0\t0\t10\t10\t0\t0\t50",
             "u2\timg5.jpg\t5\t57\tm\t0\t0\t10\t10\t0\t0\t50",
             "u3\timg6.jpg\t6\t(0, 2)\tm\t0\t0\t10\t10\t0\t0\t50"]
    (tmp_path / "fold_2_data.txt").write_text("\n".join(lines) + "\n")
    for user, face, img in (("u1", 1, "img1.jpg"), ("u1", 2, "img2.jpg"), ("u2", 5, "img5.jpg")):
        face_jpg(tmp_path / "faces" / user / f"coarse_tilt_aligned_face.{face}.{img}")
    csv, n, report = adience.convert(tmp_path, tmp_path / "out")
    frame = pd.read_csv(csv)
    assert list(frame.age) == [4, 3, 7] and list(frame.gender) == [0, 1, 1] and set(frame.fold) == {2}
    assert report.skipped == Counter({"age missing or unparsable (None)": 1, "gender unknown ('u' or empty)": 1,
                                      "missing image": 1})


def test_imdb_mat_fixture(tmp_path):
    n = 5
    dob = np.array([[723671.0, 723671.0, 723671.0, 723671.0, 600000.0]])  # 1981; the last (1642) -> age > 100
    meta = {"dob": dob, "photo_taken": np.array([[2009, 2009, 2009, 2009, 2009]]),
            "full_path": np.array([[f"01/p{i}.jpg" for i in range(n)]], dtype=object),  # a MATLAB cell
            "gender": np.array([[1.0, 0.0, np.nan, 1.0, 1.0]]),
            "face_score": np.array([[4.0, 3.0, 3.0, -np.inf, 3.0]]),
            "second_face_score": np.array([[np.nan, np.nan, np.nan, np.nan, np.nan]])}
    scipy.io.savemat(tmp_path / "imdb.mat", {"imdb": meta})  # a dict is written as a MATLAB struct
    for i in range(n):
        face_jpg(tmp_path / "01" / f"p{i}.jpg")
    csv, kept, report = imdb_wiki.convert(tmp_path, tmp_path / "out", name="imdb")
    frame = pd.read_csv(csv)
    assert kept == 2 and list(frame.age_years) == [28, 28] and list(frame.gender) == [1, 0]
    assert report.skipped["gender missing"] == 1 and report.skipped["age outside 0..100"] == 1
    assert imdb_wiki.birth_year(723671) == 1981


def test_prep_data_cli_and_training_on_a_converted_real_csv(tmp_path, capsys):
    root = shared_sample("utkface_sample")
    assert prep_main(["--dataset", "utkface", "--root", str(root), "--out", str(tmp_path), "--limit", "150",
                      "--size", "64"]) == 0
    assert "utkface: wrote 150 rows" in capsys.readouterr().out
    from utils.cli import main

    assert main("STL_general_train", ["--dataset=utkface", "--task_type=10", "--epoch=1", "--batch_size=32",
                                      f"--data_dir={tmp_path}", f"--output_dir={tmp_path / 'runs'}"]) == 0


def test_prep_data_bad_root_is_a_clear_error(tmp_path, capsys):
    assert prep_main(["--dataset", "aflw", "--root", str(tmp_path / "nope")]) == 1
    assert "--root must be the folder of the raw aflw release" in capsys.readouterr().err


def test_alignment_levels_the_eyes(tmp_path):
    from data.sources.common import align_crop

    img = np.full((120, 120, 3), 255, np.uint8)
    left, right = np.array([40.0, 50.0]), np.array([80.0, 70.0])  # eyes tilted by atan(20/40)
    for c in (left, right):
        cv2.circle(img, tuple(int(v) for v in c), 4, (0, 0, 0), -1)
    crop = align_crop(img, (20, 20, 100, 100), left, right)
    ys, xs = np.nonzero(crop[..., 0] < 128)
    left_blob, right_blob = ys[xs < xs.mean()], ys[xs >= xs.mean()]
    assert abs(left_blob.mean() - right_blob.mean()) < 1.5  # level after alignment
    assert crop.shape[:2] == (80, 80)


def test_fgnet_aligned_crops_on_the_real_sample(tmp_path):
    root = shared_sample("fgnet_sample")
    csv, n, _ = fgnet.convert(root, tmp_path, size=64, limit=20, align=True)
    assert n == 20 and load_table(str(csv)).paths.size == 20


def test_utkface_parts_are_disjoint_single_task_sets_with_hidden_labels_and_a_race_shift(tmp_path, capsys):
    from data.sources import utk_parts

    rng = np.random.default_rng(0)
    n = 600
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    races = rng.choice(5, n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    for i, r in enumerate(races):
        face_jpg(folder / f"{rng.integers(1, 90)}_{rng.integers(0, 2)}_{r}_2017{i:08d}.jpg.chip.jpg", side=40)
    assert prep_main(["--dataset", "utkface", "--root", str(folder), "--out", str(tmp_path), "--size", "32"]) == 0
    assert prep_main(["--dataset", "utk_parts", "--out", str(tmp_path), "--shift", "0.8"]) == 0
    out = capsys.readouterr().out
    parts = {p: pd.read_csv(tmp_path / "db" / f"{p}_cleaned.csv") for p in utk_parts.PARTS}
    paths = [set(f["full_path"]) for f in parts.values()]
    assert sum(map(len, paths)) == n and not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    age, gender, race = (load_table(p, tmp_path) for p in utk_parts.PARTS)
    assert (age.tasks, gender.tasks, race.tasks) == (("age",), ("gender",), ("race",))
    assert age.oracle_vocab["race"] == utk_parts.RACE5 and len(gender.oracle_vocab["age"]) == 101  # years
    whole = pd.read_csv(tmp_path / "db" / "utkface_cleaned.csv").set_index("full_path")
    np.testing.assert_array_equal(gender.oracle["race"], whole.loc[parts["utk_gender"]["full_path"], "race"])
    np.testing.assert_array_equal(race.oracle["age"], whole.loc[parts["utk_race"]["full_path"], "age_years"])
    white = {p: (f["full_path"].map(whole["race"]) == 0).mean() for p, f in parts.items()}
    assert white["utk_age"] > 0.7 > 0.3 > white["utk_gender"]  # White faces go mostly to the age part
    for f in parts.values():  # a fixed 70 / 10 / 20 split of every part
        share = f["split"].value_counts(normalize=True)
        assert abs(share["test"] - 0.2) < 0.03 and abs(share["valid"] - 0.1) < 0.03
    assert prep_main(["--dataset", "utk_parts", "--out", str(tmp_path), "--shift", "0.8"]) == 0
    assert pd.read_csv(tmp_path / "db" / "utk_race_cleaned.csv").equals(parts["utk_race"])  # seeded: reproducible
    assert "utk_race_cleaned.csv" in out and "race mix" in out


def test_converters_read_nothing_outside_root(tmp_path, capsys):
    root, outside = tmp_path / "ExpW", tmp_path / "elsewhere"
    face_jpg(root / "origin" / "a.jpg", side=80)
    face_jpg(outside / "secret.jpg", side=80)
    (root / "origin" / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "label").mkdir()
    (root / "label" / "label.lst").write_text("a.jpg 0 10 10 60 60 0.9 3\nlink.jpg 0 10 10 60 60 0.9 3\n"
                                              "../../elsewhere/secret.jpg 0 10 10 60 60 0.9 3\n")
    assert prep_main(["--dataset", "expw", "--root", str(root), "--out", str(tmp_path / "out"), "--size", "32"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "out" / "db" / "expw_cleaned.csv")
    assert frame["image"].tolist() == ["a.jpg"]
    assert re.search(r"skipped\s+2\s+outside --root", out)
    (root / "UTKFace").mkdir()
    face_jpg(outside / "30_1_0_20170101000000001.jpg.chip.jpg", side=40)
    (root / "UTKFace" / "30_1_0_20170101000000001.jpg.chip.jpg").symlink_to(
        outside / "30_1_0_20170101000000001.jpg.chip.jpg")
    face_jpg(root / "UTKFace" / "31_0_1_20170101000000002.jpg.chip.jpg", side=40)
    assert prep_main(["--dataset", "utkface", "--root", str(root / "UTKFace"), "--out", str(tmp_path / "o2")]) == 0
    assert len(pd.read_csv(tmp_path / "o2" / "db" / "utkface_cleaned.csv")) == 1  # the symlinked face is not read


def test_a_folder_per_class_emotion_set_converts_under_its_own_name_with_a_class_map(tmp_path, capsys):
    root = tmp_path / "CK+48"
    for folder, n in (("anger", 2), ("happy", 3), ("sadness", 1), ("contempt", 2)):
        for i in range(n):
            face_jpg(root / folder / f"{folder}{i}.png", side=48)
    argv = ["--dataset", "emotion_folders", "--root", str(root), "--out", str(tmp_path), "--size", "0"]
    assert prep_main([*argv, "--name", "fer2013"]) == 1  # a registered dataset's CSV is never overwritten
    assert "choose another" in capsys.readouterr().err
    assert prep_main([*argv, "--name", "ckplus", "--class_map", "anger=angry,sadness=sad"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "db" / "ckplus_cleaned.csv")
    assert Counter(frame["emotion"]) == {0: 2, 3: 3, 4: 1} and "class folder 'contempt' maps to no emotion" in out
    table = load_table("ckplus", tmp_path)
    assert table.tasks == ("emotion",) and len(table) == 6
