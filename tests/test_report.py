"""The results table and curves from real run folders."""
import csv

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
    assert evaluate_main(["--run", str(joint_run), "--dataset", "toy_emotion", "--split", "all",
                          "--data_dir", str(toy_root)]) == 0  # a cross-dataset row (here: every row)
    out = tmp_path / "report"
    assert report_main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    md = (out / "results.md").read_text().splitlines()
    stl = next(line for line in md if line.startswith("| STL (emotion)"))
    joint = next(line for line in md if line.startswith("| All-in-one"))
    assert "| 2 |" in stl and "±" in stl and stl.endswith("| — |")  # two seeds pooled; no pose column value
    assert "| 1 |" in joint and "±" not in joint
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"STL (emotion)", "All-in-one"}
    joint_test = json.loads((joint_run / "test_metrics.json").read_text())["test"]
    joint_row = next(r for r in rows if r["method"] == "All-in-one" and "->" not in r["datasets"])
    assert abs(float(joint_row["pose_acc_mean"]) - joint_test["pose"]["acc"]) < 1e-9
    cross = next(r for r in rows if r["datasets"] == "toy_emotion+toy_pose -> toy_emotion (all)")
    evaluated = json.loads((joint_run / "eval_toy_emotion_all" / "metrics.json").read_text())
    assert evaluated["rows"] == 120
    assert abs(float(cross["emotion_acc_mean"]) - evaluated["metrics"]["emotion"]["acc"]) < 1e-9
    assert (out / "curves.png").stat().st_size > 5000
    assert report_main([str(tmp_path / "nothing")]) == 1 and "no finished run folders" in capsys.readouterr().err
