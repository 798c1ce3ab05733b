"""The results table and curves from real run folders."""
import csv
import dataclasses

from utils.cli import main
from utils.report import main as report_main


def test_report_pools_seeds_and_renders_table_csv_and_plot(toy_root, tmp_path, capsys):
    common = ["--epoch=2", "--batch_size=32", f"--data_dir={toy_root}", f"--output_dir={tmp_path / 'runs'}"]
    for seed in (1, 2):
        assert main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", f"--seed={seed}", *common]) == 0
    assert main("CONFUSION_EP_multitask", ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose",
                                           "--is_naive=True", *common]) == 0
    import json

    from utils.evaluate import main as evaluate_main

    joint_run = next((tmp_path / "runs" / "CONFUSION_EP_multitask").iterdir())
    evaluated_dir = tmp_path / "eval"
    assert evaluate_main(["--run", str(joint_run), "--dataset", "toy_emotion", "--split", "all",
                          "--data_dir", str(toy_root), "--out", str(evaluated_dir)]) == 0  # a cross-dataset row
    out = tmp_path / "report"
    assert report_main([str(tmp_path / "runs"), str(evaluated_dir), "--out", str(out)]) == 0
    md = (out / "results.md").read_text().splitlines()
    stl = next(line for line in md if line.startswith("| STL (emotion)"))
    joint = next(line for line in md if line.startswith("| All-in-one"))
    assert "| 2 |" in stl and "±" in stl and stl.endswith("| — | 6 / 2 |")  # 2 seeds; no pose; steps / passes
    assert "| 1 |" in joint and "±" not in joint and joint.endswith("| 12 / 2·2 |")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"STL (emotion)", "All-in-one"}
    joint_test = json.loads((joint_run / "test_metrics.json").read_text())["test"]
    joint_row = next(r for r in rows if r["method"] == "All-in-one" and "->" not in r["datasets"])
    assert abs(float(joint_row["pose_acc_mean"]) - joint_test["pose"]["acc"]) < 1e-9
    cross = next(r for r in rows if r["datasets"] == "toy_emotion+toy_pose -> toy_emotion (all)")
    evaluated = json.loads((evaluated_dir / "metrics.json").read_text())
    assert evaluated["rows"] == 120
    assert abs(float(cross["emotion_acc_mean"]) - evaluated["metrics"]["emotion"]["acc"]) < 1e-9
    assert (out / "curves.png").stat().st_size > 5000
    assert report_main([str(tmp_path / "nothing")]) == 1 and "no finished run folders" in capsys.readouterr().err


def test_method_names_list_datasets_in_one_order_so_joint_and_alternating_runs_pair():
    from utils.cli import parse_config
    from utils.report import method_name

    flags = ["--dataset_emotion=fer2013", "--dataset_pose=pointing04", "--dataset_gender_age=utkface"]
    joint = parse_config("CONFUSION_EPGA_multitask", flags + ["--is_naive=True"])
    alternating = parse_config("ALTERNATIVE_EGA", flags + ["--is_naive=True"])
    assert [d for d, _ in joint.datasets] != [d for d, _ in alternating.datasets]  # the scripts' slot orders
    names = [method_name(dataclasses.asdict(c)) for c in (joint, alternating)]
    assert names == ["All-in-one | mini_xception | fer2013+pointing04+utkface",
                     "naive alternation | mini_xception | fer2013+pointing04+utkface"]


def test_paired_comparison_pairs_runs_by_seed_and_flips_the_sign_of_mae():
    from utils.report import paired_with_baseline

    def run(seed, acc, mae):
        return {"seed": seed, "test": {"emotion": {"acc": acc}, "age": {"mae": mae}}}

    groups = {"All-in-one | mx | a+b": [run(1, 0.50, 8.0), run(2, 0.60, 7.0), run(3, 0.55, 7.5)],
              "MTL-SA | mx | a+b": [run(3, 0.65, 7.0), run(1, 0.60, 8.5), run(2, 0.70, 6.0)],
              "MTL-SA | other | a+b": [run(1, 0.90, 1.0)]}  # no All-in-one on that model: not paired
    md = paired_with_baseline(groups, ["emotion", "age"], {"emotion": "acc", "age": "mae"})
    (line,) = [x for x in md.splitlines() if x.startswith("| MTL-SA")]
    assert line.startswith("| MTL-SA | mx | 3 | +0.100 ± 0.000 (3/3, p=nan)")  # identical gains: no variance
    # age: -(8.5-8.0), -(6.0-7.0), -(7.0-7.5) = -0.5, +1.0, +0.5 -> mean +0.333, better on 2 of 3 seeds
    assert "+0.333 ± 0.624 (2/3, p=0.53)" in line  # t = 0.333 / (0.764 / sqrt 3) with 2 df


def test_mae_units_come_from_the_runs_kinds_not_task_names():
    from utils.report import unit, units
    from utils.tasks import AGE_YEARS

    degrees = {"class_names": {"pose": ["yaw", "pitch"], "age": list(AGE_YEARS)}}
    bins = {"class_names": {"pose": ["frontal", "left", "right", "far left", "far right"]}}
    groups = {"a": [{"units": units(degrees)}], "b": [{"units": units(bins)}]}
    assert unit("pose", groups) == "degrees" and unit("age", groups) == "years"
    assert units(bins) == {"pose": ""}  # classes have no MAE unit
