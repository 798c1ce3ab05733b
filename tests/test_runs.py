"""Runs that survive and scale: kill + resume, atomic writes, NaN stop, distribution strategies."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from utils.cli import main
from utils.engine import check_finite
from utils.run_dir import atomic_save_model, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def epochs(run):
    with open(run / "metrics.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_killed_run_resumes_from_its_last_finished_epoch(toy_root, tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "STL_general_train.py"), "--dataset=toy_emotion", "--task_type=0",
           "--epoch=4", "--batch_size=32", "--model=mini_xception", f"--data_dir={toy_root}",
           f"--output_dir={out}", "--run_name=r"]
    run = out / "STL_general_train" / "r"
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not ((run / "state.json").exists()
                                          and json.loads((run / "state.json").read_text())["epoch"] >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run / "state.json").read_text())
    assert 1 <= state["epoch"] < 3, "the run should have been killed mid-way"
    done = state["epoch"]
    assert epochs(run)[:done + 1] == list(range(1, done + 2))
    resumed = subprocess.run([sys.executable, str(ROOT / "STL_general_train.py"), f"--resume={run}"], env=ENV,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed after epoch {done + 1}" in resumed.stdout
    assert epochs(run) == [1, 2, 3, 4]
    assert (run / "test_metrics.json").exists()
    assert len(list(run.glob("checkpoint-*.keras"))) == 1


def test_atomic_writes_never_leave_a_partial_file(tmp_path, monkeypatch):
    import keras

    target = tmp_path / "best.keras"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    atomic_save_model(model, target)
    good = target.read_bytes()

    def crash(self, path, *a, **k):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(OSError):
        atomic_save_model(model, target)
    assert target.read_bytes() == good  # the previous best file is intact
    keras.models.load_model(target)
    atomic_write_text(tmp_path / "s.json", "{}")
    assert not list(tmp_path.glob("*.tmp"))


def test_non_finite_loss_names_epoch_and_task(tmp_path):
    (tmp_path / "last.keras").write_bytes(b"weights of an earlier epoch")
    with pytest.raises(FloatingPointError, match=r"epoch 3 \(toy_pose\): non-finite pose loss; stopped.*last.keras"):
        check_finite({"loss": [float("nan")], "pose_prediction_loss": [float("inf")],
                      "emotion_prediction_loss": [0.3]}, 2, "toy_pose", tmp_path)


def test_exploding_run_stops_with_a_clear_error(toy_root, tmp_path, capsys):
    code = main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=3", "--lr=1e30",
                                      "--batch_size=32", f"--data_dir={toy_root}", f"--output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 1 and "non-finite" in err
    assert "no epoch had finished, so no weights were saved" in err  # and no claim of a last.keras


def test_mirrored_strategy_on_the_cpu(toy_root, tmp_path):
    assert main("CONFUSION_EP_multitask", ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose",
                                           "--epoch=1", "--batch_size=32", "--is_naive=True",
                                           "--distribute=mirrored", f"--data_dir={toy_root}",
                                           f"--output_dir={tmp_path}"]) == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multiworker_strategy_with_two_local_workers(toy_root, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    args = [sys.executable, str(ROOT / "ALTERNATIVE_EP.py"), "--dataset_emotion=toy_emotion",
            "--dataset_pose=toy_pose", "--epoch=2", "--batch_size=32", "--model=mini_xception",
            "--is_pesudo=True", "--is_pesudo_confidence=True", "--selection_threshold=0.5", "--teacher_margin=-1",
            "--distribute=multiworker", f"--data_dir={toy_root}", f"--output_dir={tmp_path}", "--run_name=mw"]
    procs = [subprocess.Popen(args, env={**ENV, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                          "task": {"type": "worker", "index": i}})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:  # no wall-clock limit (a loaded machine is slow); never leave a worker behind
        outs = [p.communicate()[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), outs[0][-1500:] + outs[1][-1500:]
    chief = tmp_path / "ALTERNATIVE_EP" / "mw"
    other = chief / "worker-worker-1"
    assert epochs(chief) == [1, 2] and epochs(other) == [1, 2]
    read = lambda run: json.loads((run / "test_metrics.json").read_text())["test"]  # noqa: E731
    for task in ("emotion", "pose"):  # both workers hold the same weights
        assert read(chief)[task]["acc"] == pytest.approx(read(other)[task]["acc"])
    a = np.load(chief / "state-001.npz")
    b = np.load(other / "state-001.npz")
    optimizer = [k for k in a.files if k.startswith("optimizer/")]
    assert len(optimizer) > 10 and all(np.allclose(a[k], b[k], atol=1e-6) for k in optimizer)


@pytest.mark.parametrize("flag", ["--jit=True", "--mixed_precision=True"])
def test_gpu_speed_flags_also_run_on_the_cpu(flag, toy_root, tmp_path):
    import keras

    assert main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                                      flag, f"--data_dir={toy_root}", f"--output_dir={tmp_path}"]) == 0
    config = json.loads(next((tmp_path / "STL_general_train").glob("*/config.json")).read_text())
    assert config["jit"] == (flag == "--jit=True") and config["mixed_precision"] == (flag != "--jit=True")
    main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                               f"--data_dir={toy_root}", f"--output_dir={tmp_path / 'plain'}"])
    assert keras.mixed_precision.global_policy().name == "float32"  # no leak into the next run
