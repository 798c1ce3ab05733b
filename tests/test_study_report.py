"""The study report's arithmetic on hand-made run records: Delta_m, the paired contrast, Holm, the gate and the
pseudo-label rows per part (no TensorFlow)."""
import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import study_report as sr


def record(folder, method, seed, age, gender, race, metrics=None):
    run = folder / "runs" / "X" / f"{method}-seed{seed}"
    run.mkdir(parents=True)
    test = {"age": {"mae": age}, "gender": {"acc": gender}, "race": {"balanced_acc": race, "acc": race + 0.05}}
    (run / "test_metrics.json").write_text(json.dumps({"test": test}))
    (metrics if metrics is not None else pd.DataFrame({"epoch": [1], "phase": ["joint"], "rounds": [1.0]})
     ).to_csv(run / "metrics.csv", index=False)


def test_delta_m_and_the_paired_contrast_follow_their_definitions(tmp_path):
    for seed in (1, 2, 3):
        record(tmp_path, "stl_age", seed, 10.0, 0.8, 0.5)
        # 10 % better on every task, plus a seed-dependent part
        record(tmp_path, "mtl_sa_hard", seed, 9.0, 0.88, 0.55 + 0.005 * seed)
        record(tmp_path, "dml_lwf", seed, 11.0, 0.72, 0.45)  # 10 % worse on every task
    runs = sr.load(tmp_path)
    ref = sr.stl_reference(runs)
    assert ref == pytest.approx({"age": 10.0, "gender": 0.8, "race": 0.5})
    assert sr.delta_m(runs["dml_lwf"][1]["test"], ref) == pytest.approx(-10.0)
    assert sr.delta_m(runs["mtl_sa_hard"][2]["test"], ref) == pytest.approx(10.0 + 2 / 3)  # race +12 %
    d = sr.paired(runs, "mtl_sa_hard", "dml_lwf")
    assert d["seeds"] == [1, 2, 3] and d["wins"] == 3
    assert d["mean"] == pytest.approx(20 + 2 / 3) and d["sd"] == pytest.approx(1 / 3)  # ddof 1 of 1/3, 2/3, 1
    assert d["ci"][0] <= d["mean"] <= d["ci"][1] and d["p"] < 0.01
    row = next(r for r in sr.results_table(runs) if r.startswith("| DML-LWF"))
    assert "| 11.00 ± 0.00 | 0.720 ± 0.000 | 0.450 ± 0.000 (0.500) | -10.00 ± 0.00" in row


def test_holm_multiplies_by_the_remaining_count_and_keeps_the_order():
    adj = sr.holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_pseudo_label_rows_are_per_part_and_the_gate_is_the_first_open_epoch(tmp_path):
    nan = np.nan
    frame = pd.DataFrame({  # joint warm-up, then age, gender, race parts twice
        "epoch": range(1, 8), "rounds": [1, 1.33, 1.67, 2, 2.33, 2.67, 3],
        "phase": ["joint", "utk_age", "utk_gender", "utk_race"] * 1 + ["utk_age", "utk_gender", "utk_race"],
        "teacher_gender_on": [nan, nan, nan, 1, 1, nan, 1],
        "pseudo_gender_oracle_acc_all": [nan, 0.7, nan, 0.6, 0.8, nan, 0.9],
    })
    record(tmp_path, "mtl_sa_hard", 1, 9.0, 0.88, 0.55, frame)
    runs = sr.load(tmp_path)
    assert sr.gate_lines(runs) == ["MTL-SA hard: the teacher's gate opened after epoch (per seed) gender: 4."]
    rows = sr.pseudo_accuracy_plot(runs, tmp_path / "p.png")
    assert "| MTL-SA hard | gender | utk_age | all | 0.800 | 1 |" in rows  # the last round on the age part
    assert "| MTL-SA hard | gender | utk_race | all | 0.900 | 1 |" in rows
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_an_exploratory_variant_is_paired_with_the_method_it_varies(tmp_path):
    main, extra = tmp_path / "r8", tmp_path / "explore_t1"
    for seed in (1, 2):
        record(main, "stl_age", seed, 10.0, 0.8, 0.5)
        record(main, "dml_lwf", seed, 11.0, 0.72, 0.45)  # Delta_m -10
        record(extra, "dml_lwf_t1", seed, 10.0, 0.8, 0.5 + 0.03 * seed)  # Delta_m +2 and +4
    (extra / "README.md").write_text("distillation at T = 1.")
    lines = sr.explore_lines(extra, sr.load(main))
    assert lines[0].endswith("distillation at T = 1.")
    row = next(r for r in lines if r.startswith("| dml_lwf_t1"))
    assert "| +3.00 ± 1.41 | +13.00 ± 1.41 [+12.00, +14.00] vs DML-LWF |" in row
    for seed in (1, 2):  # with both arms of the primary contrast varied, their contrast is printed too
        record(extra, "mtl_sa_hard_t1", seed, 10.0, 0.8, 0.5 + 0.06 * seed)  # Delta_m +4 and +8
    lines = sr.explore_lines(extra, sr.load(main))
    assert any(x.startswith("mtl_sa_hard_t1 minus dml_lwf_t1: +3.00 ± 1.41 points (seeds [1, 2], 2/2 better)")
               for x in lines)


def test_the_secondary_family_holds_the_pre_registered_methods_only(tmp_path):
    for seed in (1, 2):
        record(tmp_path, "stl_age", seed, 10.0, 0.8, 0.5)
        record(tmp_path, "all_in_one", seed, 10.0, 0.8, 0.5 + 0.01 * seed)
        for m in ("dml_lwf", "mtl_sa_hard", "mtl_sa_hard_conf", "weighting_pcgrad", "weighting_chosen_dwa"):
            record(tmp_path, m, seed, 11.0, 0.72, 0.45 + 0.001 * seed * len(m))
    text = "\n".join(sr.contrast_lines(sr.load(tmp_path)))
    assert "Holm-corrected over 3 comparisons" in text  # DML-LWF, MTL-SA hard, the chosen weighting
    assert "confidence only" not in text and "[pcgrad]" not in text and "[dwa], chosen" in text


def test_per_dataset_statistics_records_replace_a_runs_test_where_present(tmp_path):
    """benchmarks/study_bn_check.py's files: load(prefer=...) reads them for the runs that have one only."""
    for seed in (1, 2):
        record(tmp_path, "stl_age", seed, 10.0, 0.8, 0.5)
        record(tmp_path, "dml_lwf", seed, 11.0, 0.72, 0.45)
    own = {"age": {"mae": 8.0}, "gender": {"acc": 0.8}, "race": {"balanced_acc": 0.5, "acc": 0.55}}
    for seed in (1, 2):  # STL better under its own statistics; DML-LWF (alternating) has no such file
        (tmp_path / "runs" / "X" / f"stl_age-seed{seed}" / sr.BN_OWN).write_text(json.dumps({"test": own}))
    saved, per_dataset = sr.load(tmp_path), sr.load(tmp_path, prefer=sr.BN_OWN)
    assert sr.stl_reference(saved)["age"] == pytest.approx(10.0)
    assert sr.stl_reference(per_dataset)["age"] == pytest.approx(8.0)
    assert per_dataset["dml_lwf"][1]["test"] == saved["dml_lwf"][1]["test"]
    assert sr.delta_m(per_dataset["dml_lwf"][1]["test"], sr.stl_reference(per_dataset)) == pytest.approx(
        (-(11 - 8) / 8 * 100 - 10 - 10) / 3)
