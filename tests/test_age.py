"""Age in years (101 bins, expected value), SSR-Net's stagewise formula, backbones at 64/96/224."""
import numpy as np
import pandas as pd
import pytest

from models import ModelSpec, build_net
from models.ssrnet import ExpectationToBins, SoftStagewiseRegression
from utils.datasets import load_table
from utils.evaluation import task_metrics
from utils.kinds import expected_value
from utils.losses import masked_expectation_l1
from utils.targets import smooth_years
from utils.tasks import AGE_YEARS, years_to_group


def test_expected_value_of_a_101_way_softmax():
    p = np.zeros((3, 101))
    p[0, 30] = 1.0
    p[1, [20, 40]] = 0.5
    p[2] = np.exp(-0.5 * ((np.arange(101) - 62.0) / 3.0) ** 2)
    np.testing.assert_allclose(expected_value(p), [30.0, 30.0, 62.0], atol=1e-6)


def test_expectation_l1_is_the_mae_over_labelled_rows_only():
    y = np.zeros((3, 101), np.float32)
    y[0, 25], y[2, 60] = 1, 1  # row 1 has no age label
    p = np.zeros((3, 101), np.float32)
    p[0, 30], p[1, 90], p[2, [50, 60]] = 1, 1, 0.5
    assert float(masked_expectation_l1(y, p)) == pytest.approx((5 + 5) / 2)
    assert float(masked_expectation_l1(np.zeros_like(y), p)) == 0.0


def test_years_metrics_mae_and_cs5_with_masking():
    class T:
        labels = {"age": np.array([20, -1, 40, 70])}

    p = np.zeros((4, 101))
    p[0, 23], p[1, 5], p[2, 50], p[3, 72] = 1, 1, 1, 1
    m = task_metrics([T()], [{"age": p}], "age", 101, "years")
    assert m["n"] == 3 and m["mae"] == pytest.approx((3 + 10 + 2) / 3) and m["cs5"] == pytest.approx(2 / 3)
    assert m["confusion"].shape == (8, 8) and m["confusion"].sum() == 3


def test_ssr_stagewise_formula_against_a_hand_computed_case():
    p = [np.array([[0.2, 0.3, 0.5]]), np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])]
    d = [np.array([[0.4]]), np.array([[0.0]]), np.array([[-0.4]])]
    e = [np.array([[0.0, 0.0, 0.0]]), np.array([[0.8, 0.0, 0.0]]), np.array([[0.0, 0.0, -1.0]])]
    y = float(SoftStagewiseRegression((3, 3, 3), 101.0, 0.25, 0.25)(p + d + e)[0])
    s1 = 3 * (1 + 0.25 * 0.4)                    # 3.3
    s2 = s1 * 3 * (1 + 0.0)                      # 9.9
    s3 = s2 * 3 * (1 - 0.25 * 0.4)               # 26.73
    stage1 = (0 * 0.2 + 1 * 0.3 + 2 * 0.5) / s1  # 1.3 / 3.3
    stage2 = (0 + 0.25 * 0.8) * 1.0 / s2         # 0.2 / 9.9
    stage3 = (2 + 0.25 * -1.0) * 1.0 / s3        # 1.75 / 26.73
    assert y == pytest.approx(101 * (stage1 + stage2 + stage3), rel=1e-5)


def test_two_hot_bins_keep_the_value_as_expected_value():
    y = np.array([0.0, 3.25, 99.9, 140.0], np.float32)
    bins = np.asarray(ExpectationToBins(101)(y))
    np.testing.assert_allclose(bins.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(expected_value(bins), [0.0, 3.25, 99.9, 100.0], atol=1e-4)


@pytest.mark.parametrize("backbone,size", [("mini_xception", 64), ("mini_xception", 96), ("ssrnet", 64),
                                           ("mobilenetv2", 64), ("mobilenetv2", 96), ("mobilenetv2", 224),
                                           ("inceptionv3", 64), ("inceptionv3", 96), ("inceptionv3", 224),
                                           ("vggFace", 224)])
def test_backbones_build_with_gender_and_101_age_outputs(backbone, size):
    m = build_net(ModelSpec(backbone, {"gender": 2, "age": 101}, input_size=size))
    ch = 1 if backbone == "mini_xception" else 3
    out = m(np.zeros((1, size, size, ch), np.float32))
    assert out["gender_prediction"].shape == (1, 2) and out["age_prediction"].shape == (1, 101)


def test_ssrnet_rejects_other_tasks():
    with pytest.raises(ValueError, match="age and gender only"):
        build_net(ModelSpec("ssrnet", {"emotion": 7}))


def test_years_datasets_read_age_years_and_groups_on_request(tmp_path):
    import cv2

    (tmp_path / "db").mkdir()
    for name in "abc":
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame({"full_path": ["a.png", "b.png", "c.png"], "gender": [0, 1, 0], "age": [4, 2, 7],
                  "age_years": [28, 9.5, 100]}).to_csv(tmp_path / "db" / "utkface_cleaned.csv", index=False)
    t = load_table("utkface", tmp_path)
    assert t.info.vocab["age"] == AGE_YEARS and t.labels["age"].tolist() == [28, 10, 100]
    g = load_table("utkface", tmp_path, age_kind="groups")
    assert len(g.info.vocab["age"]) == 8 and g.labels["age"].tolist() == [4, 2, 7]
    assert [years_to_group(v) for v in (28, 9.5, 100)] == [4, 2, 7]


def test_label_smoothing_only_touches_true_one_hot_rows():
    rows = np.zeros((3, 101), np.float32)
    rows[0, 50] = 1.0
    rows[2, [10, 11]] = 0.5  # a soft (pseudo) row
    out = smooth_years(rows, 2.0)
    assert out[0].argmax() == 50 and out[0, 48] > 0.1 and out[0].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(out[2], rows[2])


def test_demo_prints_age_in_years_for_year_models(tmp_path):
    import json

    import keras

    import final_image_demo

    keras.utils.set_random_seed(0)  # an untrained net: the same distribution every run
    path = tmp_path / "ssr.keras"
    build_net(ModelSpec("ssrnet", {"gender": 2, "age": 101})).save(path)
    js = tmp_path / "f.json"
    assert final_image_demo.main(["--weights", str(path), "--detector", "haar", "--json", str(js),
                                  "--output", str(tmp_path / "o.jpg")]) == 0
    (face,) = [json.loads(line) for line in js.read_text().splitlines()]
    probs = np.array(list(face["age"]["probs"].values()))
    lo, hi = face["age"]["range"]  # the central 50 % of the predicted distribution, shown as the label
    cdf = np.cumsum(probs) / probs.sum()
    assert face["age"]["label"] == f"{lo}-{hi} years" and cdf[lo] >= 0.25 > (cdf[lo - 1] if lo else 0)
    assert cdf[hi] >= 0.75 > cdf[hi - 1]
    # the expected value: the record rounds years to 0.1 and each probability to 4 decimals (0.05 + ~0.05)
    assert face["age"]["years"] == pytest.approx((probs * np.arange(101)).sum() / probs.sum(), abs=0.1)
    assert face["gender"]["label"] in ("female", "male")
