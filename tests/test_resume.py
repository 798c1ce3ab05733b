"""A run killed at any phase and continued with --resume gives the metrics.csv of an uninterrupted run."""
import csv

import numpy as np
import pytest

from utils.cli import parse_config
from utils.engine import config_from_run, train

PSEUDO = ["--is_pesudo=True", "--is_pesudo_confidence=True", "--is_pesudo_density=True",
          "--is_pesudo_distribution=True", "--cluster_k=2", "--teacher_margin=-1"]
METHODS = {
    "stl": ("STL_general_train", ["--dataset=toy_emotion", "--task_type=0"]),
    "all_in_one": ("CONFUSION_EP_multitask", ["--is_naive=True"]),
    "naive_alternation": ("ALTERNATIVE_EP", ["--is_naive=True"]),
    "mtl_sa_hard": ("ALTERNATIVE_EP", PSEUDO + ["--selection_threshold=0.5"]),
    "mtl_sa_soft": ("ALTERNATIVE_EP", PSEUDO + ["--is_interpolation=True"]),
    "dcn_ap": ("CONFUSION_EP_multitask", ["--is_pesudo=True", "--is_MRF=True", "--teacher_margin=-1"]),
    "lel_ltn": ("CONFUSION_EP_multitask", ["--is_pesudo=True", "--is_LTN=True", "--teacher_margin=-1"]),
}
WEIGHTINGS = ["uncertainty", "dwa", "gradnorm", "famo", "pcgrad", "mgda", "cagrad"]
# where a kill lands: a part of the engine entered once per epoch, and the 0-based epoch in which it dies
PHASES = {
    "teacher": ("utils.engine.teacher.Teacher.fills_for", 2),
    "fit": ("utils.engine.trainer.Trainer.train_one_epoch", 2),
    "batchnorm": ("utils.engine.probe.Probe.refresh", 2),
    "validation": ("utils.engine.probe.Probe.evaluate", 2),
    "checkpoint": ("utils.run_dir.atomic_save_npz", 2),  # imported by save_checkpoint at each call
}


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs."""


def argv_for(script, flags, toy_root, out, name):
    data = [] if script == "STL_general_train" else ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose"]
    return script, [*data, *flags, "--model=mini_xception", "--input_size=32", "--batch_size=32", "--limit=64",
                    "--rounds=3", "--image_check=exists", f"--data_dir={toy_root}", f"--output_dir={out}",
                    f"--run_name={name}"]


def numeric_rows(run) -> list:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in rows]


def kill_then_resume(monkeypatch, script, argv, target: str, at_epoch: int) -> None:
    """Run until ``target`` (called once per epoch) is entered in epoch ``at_epoch`` (0-based), which dies."""
    import importlib

    module, _, attr = target.rpartition(".")
    try:
        owner = importlib.import_module(module)
    except ModuleNotFoundError:  # a method: module.Class.method
        module, cls = module.rsplit(".", 1)
        owner = getattr(importlib.import_module(module), cls)
    original, calls = getattr(owner, attr), {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > at_epoch:
            raise Killed()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, dying)
    with pytest.raises(Killed):
        train(parse_config(script, argv))
    monkeypatch.setattr(owner, attr, original)


def compare(toy_root, tmp_path, monkeypatch, script, flags, phase="teacher"):
    target, at_epoch = PHASES[phase]
    s, argv_a = argv_for(script, flags, toy_root, tmp_path, "whole")
    train(parse_config(s, argv_a))
    s, argv_b = argv_for(script, flags, toy_root, tmp_path, "killed")
    kill_then_resume(monkeypatch, s, argv_b, target, at_epoch)
    run_b = tmp_path / s / "killed"
    done = numeric_rows(run_b)
    assert 0 < len(done) <= at_epoch  # the kill came before the end
    train(config_from_run(str(run_b)), resume=True)
    whole, resumed = numeric_rows(tmp_path / s / "whole"), numeric_rows(run_b)
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in whole]
    for a, b in zip(whole, resumed):
        assert a.keys() == b.keys()
        for k in a:
            if a[k] != b[k]:
                assert np.isclose(float(a[k]), float(b[k]), rtol=0, atol=0), (k, a["epoch"], a[k], b[k])


@pytest.mark.parametrize("phase", ["teacher"])
def test_mtl_sa_killed_in_the_teacher_resumes_exactly(phase, toy_root, tmp_path, monkeypatch):
    compare(toy_root, tmp_path, monkeypatch, *METHODS["mtl_sa_hard"], phase=phase)


@pytest.mark.parametrize("name", ["dwa", "uncertainty"])
def test_a_weighting_strategy_resumes_with_its_own_state(name, toy_root, tmp_path, monkeypatch):
    compare(toy_root, tmp_path, monkeypatch, "CONFUSION_EP_multitask", ["--is_naive=True", f"--weighting={name}"],
            phase="fit")


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["fit", "batchnorm", "validation", "checkpoint"])
def test_mtl_sa_killed_in_any_phase_resumes_exactly(phase, toy_root, tmp_path, monkeypatch):
    compare(toy_root, tmp_path, monkeypatch, *METHODS["mtl_sa_hard"], phase=phase)


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in METHODS if m != "mtl_sa_hard"])
def test_every_method_resumes_exactly(method, toy_root, tmp_path, monkeypatch):
    compare(toy_root, tmp_path, monkeypatch, *METHODS[method], phase="fit")


@pytest.mark.slow
@pytest.mark.parametrize("name", [w for w in WEIGHTINGS if w not in ("dwa", "uncertainty")])
def test_every_weighting_strategy_resumes_exactly(name, toy_root, tmp_path, monkeypatch):
    compare(toy_root, tmp_path, monkeypatch, "CONFUSION_EP_multitask", ["--is_naive=True", f"--weighting={name}"],
            phase="fit")
