"""Long checks (``pytest -m slow``): the synthetic faces are learnable and joint training learns every task."""
import json

import pytest

from utils.cli import main

pytestmark = pytest.mark.slow
# mean over the pseudo-label epochs of (selected minus rejected) oracle accuracy; in the toy study's runs
# (seed 1) emotion separated by 0.10-0.20 and pose by 0.05-0.14 after the first pseudo-label epoch
SELECTION_MARGIN = {"emotion": 0.08, "pose": 0.04}


@pytest.fixture(scope="module")
def full_toy(tmp_path_factory):
    from utils.synthetic_faces import write_toy

    root = tmp_path_factory.mktemp("toy_full")
    write_toy(root, n_per_dataset=1500, seed=0)
    return root


def test_stl_on_synthetic_emotion_is_far_above_chance(full_toy, tmp_path):
    assert main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=8", "--batch_size=64",
                                      f"--data_dir={full_toy}", f"--output_dir={tmp_path}", "--run_name=r"]) == 0
    test = json.loads((tmp_path / "STL_general_train" / "r" / "test_metrics.json").read_text())["test"]
    assert test["emotion"]["acc"] > 0.6  # chance is 1/7


def test_joint_four_head_model_beats_chance_on_every_task(full_toy, tmp_path):
    assert main("CONFUSION_EPGA_multitask", [
        "--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--dataset_gender_age=toy_gender_age",
        "--epoch=8", "--batch_size=64", "--is_naive=True", f"--data_dir={full_toy}", f"--output_dir={tmp_path}",
        "--run_name=r"]) == 0
    test = json.loads((tmp_path / "CONFUSION_EPGA_multitask" / "r" / "test_metrics.json").read_text())["test"]
    chance = {"emotion": 1 / 7, "pose": 1 / 5, "gender": 1 / 2, "age": 1 / 8}
    for task, c in chance.items():
        assert test[task]["acc"] > 2 * c if task != "gender" else test[task]["acc"] > 0.75, (task, test[task]["acc"])


def test_selected_pseudo_labels_are_more_accurate_than_rejected_ones(full_toy, tmp_path):
    import csv

    assert main("ALTERNATIVE_EP", [
        "--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--rounds=4", "--warmup_epochs=2",
        "--model=mini_xception", "--input_size=32",
        "--batch_size=64", "--E_loss_weights=1", "--P_loss_weights=1", "--is_pesudo=True",
        "--is_pesudo_confidence=True", "--is_pesudo_density=True", "--is_pesudo_distribution=True",
        "--cluster_k=3", "--selection_threshold=0.5", f"--data_dir={full_toy}", f"--output_dir={tmp_path}",
        "--run_name=r"]) == 0
    with open(tmp_path / "ALTERNATIVE_EP" / "r" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for task in ("emotion", "pose"):
        gaps = [float(r[f"pseudo_{task}_oracle_acc_selected"]) - float(r[f"pseudo_{task}_oracle_acc_rejected"])
                for r in rows if r.get(f"pseudo_{task}_oracle_acc_selected")]
        assert len(gaps) >= 2 and sum(gaps) / len(gaps) > SELECTION_MARGIN[task], (task, gaps)
