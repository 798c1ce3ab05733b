"""The model card's group tables: pose per held-out person, gender and age per UTKFace group."""
from types import SimpleNamespace

import numpy as np
import pandas as pd

from utils.model_card import fairness, per_person


def _csv(root, name: str, frame: pd.DataFrame):
    (root / "db").mkdir(exist_ok=True)
    frame.to_csv(root / "db" / f"{name}_cleaned.csv", index=False)
    return root / "db" / f"{name}_cleaned.csv"


def test_pose_is_reported_per_person_even_when_the_split_groups_by_fold(tmp_path):
    # a Pointing'04 conversion with a fold column: the table's groups are folds, the card wants persons
    paths = [f"crops/pointing04/p{k}.jpg" for k in range(6)]
    csv = _csv(tmp_path, "pointing04", pd.DataFrame({"full_path": paths, "pose": 0, "subject": ["person03"] * 2
                                                     + ["person07"] * 4, "fold": 1}))
    y = np.array([0, 1, 0, 1, 2, 3])
    probs = np.eye(5)[[0, 0, 0, 1, 2, 4]]  # person03 1 of 2 right, person07 3 of 4
    table = SimpleNamespace(csv_path=csv, rows=np.arange(6), labels={"pose": y}, groups=np.array(["1"] * 6))
    lines = per_person(({"pose": probs}, table, ["pose"]))
    text = "\n".join(lines)
    assert "over 2 persons (n = 6)" in text and "accuracy 0.667" in text
    assert "| person03 | 2 | 0.500 |" in text and "| person07 | 4 | 0.750 |" in text
    assert "mean 0.625, sd 0.177" in text  # sample sd of (0.5, 0.75)


def test_fairness_tables_count_each_group_and_name_the_gap(tmp_path):
    paths = [f"crops/utkface/f{k}.jpg" for k in range(4)]
    csv = _csv(tmp_path, "utkface", pd.DataFrame({"full_path": paths, "race": [2, 0, 0, 1], "gender": 0, "age": 1}))
    table = SimpleNamespace(csv_path=csv, rows=np.array([1, 2, 3, 0]),  # a test part: some CSV rows, shuffled
                            labels={"gender": np.array([0, 1, 0, 1]), "age": np.array([5, 30, 45, 70])})
    ages = np.zeros((4, 101))
    ages[[0, 1, 2, 3], [5, 20, 45, 60]] = 1  # errors 0, 10, 0, 10 years
    preds = {"gender": np.eye(2)[[0, 1, 1, 1]], "age": ages}
    text = "\n".join(fairness((preds, table, ["gender", "age"]), {"gender": ["female", "male"]}))
    assert "gender accuracy 0.750, age MAE 5.00 years, n = 4" in text
    assert "| white | 2 | 1.000 |" in text and "| asian | 1 | 1.000 |" in text and "| black | 1 | 0.000 |" in text
    assert "| age MAE (years) by age band | n | value |" in text and "| 60+ | 1 | 10.00 |" in text
    assert text.count("| gap (largest - smallest) | | 1.000 |") >= 1
