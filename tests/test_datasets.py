"""The data contract: every validation failure names file, row and column; splits are sound."""
import numpy as np
import pandas as pd
import pytest

from utils.datasets import DataError, load_table, split_indices


def write(tmp_path, rows, name="mini_cleaned.csv", images=None):
    import cv2

    (tmp_path / "db").mkdir(exist_ok=True)
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(images or max(3, len(rows))):  # one image per row: repeated paths are deduplicated
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((8, 8, 3), (i * 40) % 256, np.uint8))
    csv = tmp_path / "db" / name
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def rows(n=3):
    return [{"full_path": f"img/{i}.png", "emotion": i % 7} for i in range(n)]


def test_valid_csv_loads_with_paths_resolved_against_data_root(tmp_path):
    csv = write(tmp_path, rows())
    t = load_table(str(csv))
    assert len(t) == 3 and t.tasks == ("emotion",)
    assert t.paths[0] == str(tmp_path / "img" / "0.png")
    assert t.labels["emotion"].tolist() == [0, 1, 2]


def test_missing_csv_names_the_file_and_how_to_create_it(tmp_path):
    with pytest.raises(DataError, match=r"sfew_cleaned.csv not found.*prep_data.py --dataset sfew"):
        load_table("SFEW", data_dir=tmp_path)


def test_missing_label_column_is_named(tmp_path):
    csv = write(tmp_path, rows())
    with pytest.raises(DataError, match=r"mini_cleaned.csv: missing label column 'pose'"):
        load_table(str(csv), tasks=["pose"])


def test_missing_full_path_column(tmp_path):
    csv = write(tmp_path, [{"path": "img/0.png", "emotion": 1}])
    with pytest.raises(DataError, match="missing column 'full_path'"):
        load_table(str(csv))


def test_out_of_range_label_names_row_and_column(tmp_path):
    r = rows()
    r[2]["emotion"] = 9
    csv = write(tmp_path, r)
    with pytest.raises(DataError, match=r"row 2 \(line 4\): column 'emotion' value 9 is out of range 0..6"):
        load_table(str(csv))


def test_non_integer_label(tmp_path):
    r = rows()
    r[1]["emotion"] = "happy"
    csv = write(tmp_path, r)
    with pytest.raises(DataError, match=r"row 1 .*'emotion' has non-integer value 'happy'"):
        load_table(str(csv))


def test_missing_and_unreadable_images(tmp_path):
    r = rows()
    r[1]["full_path"] = "img/nope.png"
    csv = write(tmp_path, r)
    with pytest.raises(DataError, match=r"row 1 .*image not found: .*nope.png"):
        load_table(str(csv))
    (tmp_path / "img" / "bad.jpg").write_bytes(b"this is not an image")
    r[1]["full_path"] = "img/bad.jpg"
    csv = write(tmp_path, r)
    with pytest.raises(DataError, match=r"row 1 .*not a readable image"):
        load_table(str(csv))


def test_empty_label_cells_are_missing_not_errors(tmp_path):
    r = rows()
    r[0]["emotion"] = None
    t = load_table(str(write(tmp_path, r)))
    assert t.labels["emotion"].tolist() == [-1, 1, 2]


def test_official_split_column_is_used(tmp_path):
    r = [{"full_path": f"img/{i}.png", "emotion": 0, "split": s}
         for i, s in enumerate(["Training"] * 6 + ["PublicTest"] * 2 + ["PrivateTest"] * 2)]
    parts = split_indices(load_table(str(write(tmp_path, r))))
    assert parts["train"].tolist() == list(range(6))
    assert parts["valid"].tolist() == [6, 7] and parts["test"].tolist() == [8, 9]


def test_kfold_split_is_seeded_disjoint_and_complete(tmp_path):
    r = [{"full_path": f"img/{i}.png", "emotion": i % 7} for i in range(50)]
    t = load_table(str(write(tmp_path, r)))
    a, b = split_indices(t, seed=4), split_indices(t, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    union = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(union.tolist()) == list(range(50)) and len(a["test"]) == 10
    assert not np.array_equal(split_indices(t, seed=5)["test"], a["test"])


def test_subject_column_gives_subject_disjoint_splits(tmp_path):
    r = [{"full_path": f"img/{i}.png", "age": i % 8, "subject": f"s{i // 4}"} for i in range(80)]
    t = load_table(str(write(tmp_path, r)))
    parts = split_indices(t, val_fraction=0.0)
    assert not set(t.groups[parts["train"]]) & set(t.groups[parts["test"]])


def test_release_without_test_part_tests_on_its_official_validation_rows(tmp_path):
    # FER2013 without PrivateTest, SFEW: the official validation rows become the test part and a
    # validation part is carved from train, so no row that picks checkpoints is reported as test
    r = [{"full_path": f"img/{i}.png", "emotion": 0, "split": s}
         for i, s in enumerate(["Training"] * 20 + ["PublicTest"] * 5)]
    parts = split_indices(load_table(str(write(tmp_path, r))), val_fraction=0.1)
    assert parts["test"].tolist() == [20, 21, 22, 23, 24]
    assert len(parts["valid"]) == 2 and not set(parts["valid"]) & set(parts["test"])
    assert sorted(np.concatenate([parts["train"], parts["valid"]]).tolist()) == list(range(20))
    assert "official 'valid' rows are the test part" in parts["protocol"]


def test_train_only_split_column_gets_a_seeded_test_part(tmp_path):
    r = [{"full_path": f"img/{i}.png", "emotion": 0, "split": "train"} for i in range(50)]
    parts = split_indices(load_table(str(write(tmp_path, r))), n_splits=5, seed=2)
    assert len(parts["test"]) == 10 and len(parts["valid"]) == 4 and len(parts["train"]) == 36
    assert len(set(parts["test"]) | set(parts["valid"]) | set(parts["train"])) == 50
