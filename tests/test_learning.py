"""Long checks (``pytest -m slow``): the synthetic faces are learnable and joint training learns every task."""
import json

import pytest

from utils.cli import main

pytestmark = pytest.mark.slow


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
