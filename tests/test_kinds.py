"""A new task kind through the kind seam: age in years regressed directly (--age_kind value)."""
import json

import numpy as np
import pandas as pd
import pytest

from utils.cli import main
from utils.kinds import KINDS, kind_of
from utils.tasks import AGE_VALUE


def test_age_as_a_direct_regression_trains_and_pseudo_labels_through_the_seams(toy_root, tmp_path):
    kind = kind_of(AGE_VALUE)
    assert kind is KINDS["age_value"] and kind.regression and kind.unit == "years"
    rows = kind.weighted(np.array([[30.0], [50.0]]), np.array([1.0, 0.5]), 1)
    np.testing.assert_array_equal(rows, [[30.0, 1.0], [50.0, 0.5]])  # [value, weight] target rows
    ages = tmp_path / "data"  # a gender + age set whose age is in years
    (ages / "db").mkdir(parents=True)
    frame = pd.read_csv(toy_root / "db" / "toy_gender_age_cleaned.csv")
    frame["full_path"] = [str(toy_root / p) if not str(p).startswith("/") else p for p in frame["full_path"]]
    frame["age_years"] = np.random.default_rng(0).integers(5, 80, len(frame))
    frame.to_csv(ages / "db" / "ages_cleaned.csv", index=False)
    emotion = pd.read_csv(toy_root / "db" / "toy_emotion_cleaned.csv")
    emotion["full_path"] = [str(toy_root / p) if not str(p).startswith("/") else p for p in emotion["full_path"]]
    emotion.to_csv(ages / "db" / "emotions_cleaned.csv", index=False)
    argv = ["--dataset_emotion=emotions", "--dataset_gender_age=ages", "--age_kind=value", "--rounds=2",
            "--model=mini_xception", "--input_size=32", "--batch_size=32", "--limit=64", "--image_check=exists",
            "--is_pesudo=True", "--is_pesudo_confidence=True", "--teacher_margin=-1", f"--data_dir={ages}",
            f"--output_dir={tmp_path}", "--run_name=v"]
    assert main("ALTERNATIVE_EGA", argv) == 0
    run = tmp_path / "ALTERNATIVE_EGA" / "v"
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"]["age"] == ["years"] and config["model_spec"]["regression"] == {"age": 10.0}
    test = json.loads((run / "test_metrics.json").read_text())["test"]["age"]
    assert test["mae"] > 0 and test["mae_train_mean"] > 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["pseudo_age_selected_share"].notna().any()  # the emotion dataset's faces got pseudo ages
    assert (metrics["train_age_prediction_mae"] > 0).all()
    from models import load_model

    assert load_model(run / "best.keras").output["age_prediction"].shape[-1] == 1
    with pytest.raises(SystemExit):
        main("ALTERNATIVE_EGA", [*argv[:2], "--age_kind=nonsense"])
