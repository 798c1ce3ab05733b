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


def test_race_rows_at_the_whole_parts_age_mix_separate_difficulty_from_composition():
    from utils.model_card import age_standardised, standardised_table

    hits = np.array([1, 1, 0, 1, 1, 1], float)  # white: two adults; asian: two children (one right), two adults
    band = np.array([2, 2, 0, 0, 2, 2])  # the part: a third children, two thirds 20-39
    weights = np.bincount(band, minlength=5) / 6
    assert age_standardised(hits[2:], band[2:], weights) == np.float64(1 / 3 * 0.5 + 2 / 3 * 1.0)  # raw: 0.75
    assert age_standardised(hits[:2], band[:2], weights) == 1.0  # no children: the adult band alone
    rows = standardised_table({"white": np.array([0, 1]), "asian": np.array([2, 3, 4, 5])}, band,
                              {"gender accuracy": (hits, ".3f")})
    assert rows[0] == "| race, at the whole part's age mix | n | aged 0-12 | gender accuracy | 95 % interval |"
    assert rows[2] == "| white | 2 | 0.00 | 1.000 | 1.000 to 1.000 |"
    assert rows[3] == "| asian | 4 | 0.50 | 0.833 | 0.667 to 1.000 |"  # the child is right or not
    assert rows[4] == "| gap (largest - smallest) | | | white - asian: 0.167 | 0.000 to 0.333 |"


def test_the_reliability_diagram_has_a_panel_per_task_with_both_curves(tmp_path):
    import cv2

    from utils.model_card import reliability_png

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    logits = rng.normal(0, 1, (500, 3))
    logits[np.arange(500), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    reliability_png(tmp_path / "r.png", {"emotion": (probs, labels), "pose": (probs, labels)},
                    {"emotion": 0.7, "pose": 1.4})
    image = cv2.imread(str(tmp_path / "r.png"))
    assert image.shape[:2] == (round(3.8 * 110), round(2 * 3.6 * 110))  # two panels side by side
    blue = (np.abs(image.astype(int) - [180, 119, 31]).sum(2) < 30)  # matplotlib's C0, in BGR
    grey = (np.abs(image.astype(int) - [140, 140, 140]).sum(2) < 20)  # the "before" curve, colour 0.55
    for half in (slice(0, image.shape[1] // 2), slice(image.shape[1] // 2, None)):
        assert blue[:, half].sum() > 200 and grey[:, half].sum() > 200


def test_a_plot_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys):
    from utils.model_card import main

    (tmp_path / "taken.png").mkdir()
    for bad in ("r.jpg", "taken.png"):
        assert main(["--model", str(tmp_path / "none.keras"), "--plot", str(tmp_path / bad)]) == 1
        assert "not a .png file that can be written" in capsys.readouterr().err
