"""Bad input and real faults: each ends in one clear line (or correct behaviour) and loses nothing.

Every case uses a real bad file or a real fault (a truncated JPEG, a file-size limit set with
``setrlimit``, two threads claiming one run name), not a mock. The table in docs/faults.md lists them.
"""
import csv
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.cli import main, parse_command
from utils.datasets import DataError, load_table
from utils.run_dir import RunDir, RunFolderError, claim_run_folder

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--batch_size=32", "--model=mini_xception", "--limit=120"]


def stl(toy_root, out, *extra):
    return main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", *FAST,
                                      f"--data_dir={toy_root}", f"--output_dir={out}", *extra])


def metrics_epochs(run: Path) -> list:
    with open(run / "metrics.csv", newline="") as f:
        return [r["epoch"] for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------ data lost
def test_reusing_a_run_name_never_touches_the_old_run(toy_root, tmp_path):
    assert stl(toy_root, tmp_path, "--run_name=conc") == 0
    first = tmp_path / "STL_general_train" / "conc"
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir() if p.is_file()}
    assert stl(toy_root, tmp_path, "--run_name=conc", "--seed=2") == 0
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir() if p.is_file()} == before
    assert metrics_epochs(first) == ["1"]
    second = tmp_path / "STL_general_train" / "conc-2"
    assert json.loads((second / "config.json").read_text())["seed"] == 2 and metrics_epochs(second) == ["1"]


def test_runs_started_together_with_one_name_get_their_own_folders(tmp_path):
    barrier, got = threading.Barrier(4), []

    def claim():
        barrier.wait()
        got.append(claim_run_folder(tmp_path / "runs" / "same"))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in got) == ["same", "same-2", "same-3", "same-4"]


def test_a_run_folder_in_use_is_locked(tmp_path):
    held = RunDir(tmp_path / "r")
    with pytest.raises(RunFolderError, match="in use by another running process"):
        RunDir(tmp_path / "r")
    del held


# ------------------------------------------------------------------------------------ bad images
@pytest.fixture
def truncated_set(tmp_path):
    """A cleaned CSV of real JPEG faces, one of them cut in half (OpenCV still opens it)."""
    import cv2

    from utils.synthetic_faces import write_toy

    write_toy(tmp_path, n_per_dataset=80, seed=5, datasets=["toy_emotion"])
    frame = pd.read_csv(tmp_path / "db" / "toy_emotion_cleaned.csv")
    src = tmp_path / frame.full_path[7]
    img = cv2.imread(str(src))
    jpg = tmp_path / "truncated.jpg"
    data = cv2.imencode(".jpg", img)[1].tobytes()
    jpg.write_bytes(data[:len(data) // 2])
    assert cv2.imread(str(jpg)) is not None  # the other decoders accept it
    frame.loc[7, "full_path"] = str(jpg)
    frame.to_csv(tmp_path / "db" / "toy_emotion_cleaned.csv", index=False)
    return tmp_path, jpg


def test_truncated_jpeg_is_named_before_training(truncated_set, tmp_path, capsys):
    root, jpg = truncated_set
    out = tmp_path / "out"
    code = main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                                      f"--data_dir={root}", f"--output_dir={out}"])
    err = capsys.readouterr().err
    assert code == 1 and str(jpg) in err and "--skip_bad_images" in err and "Traceback" not in err
    assert "toy_emotion_cleaned.csv: row 7 (line 9): column 'full_path'" in err  # the CSV row, not only the file
    assert " In" not in err.split("(", 1)[1].split(")")[0] and len(err.strip().splitlines()) == 1  # no TF internals
    with pytest.raises(DataError, match="truncated.jpg"):
        load_table("toy_emotion", root, image_check="decode")


def test_skip_bad_images_drops_and_counts_them(truncated_set, tmp_path, capsys):
    root, _ = truncated_set
    code = main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                                      "--skip_bad_images=True", f"--data_dir={root}", f"--output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 0 and "note: toy_emotion: dropped 1 rows whose image TensorFlow cannot decode" in err


# ------------------------------------------------------------------------------------ disk full
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    # RLIMIT_FSIZE makes the kernel refuse writes past 64 KiB with EFBIG, as a full disk refuses with ENOSPC
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from utils.run_dir import RunFolderError, atomic_write_text\n"
        f"target = Path({str(tmp_path)!r}) / 'metrics.csv'\n"
        "target.write_text('old rows\\n')\n"
        "try:\n"
        "    atomic_write_text(target, 'x' * 200000)\n"
        "except RunFolderError as exc:\n"
        "    print(exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "cannot write" in res.stdout and "metrics.csv" in res.stdout and "nothing partial" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # no temporary left behind
    assert (tmp_path / "metrics.csv").read_text() == "old rows\n"  # what was written before is kept


# ------------------------------------------------------------------------------------ CSV contents
def write_csv(tmp_path, rows, images=4):
    import cv2

    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(images):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((8, 8, 3), 30 * i, np.uint8))
    (tmp_path / "db").mkdir(exist_ok=True)
    path = tmp_path / "db" / "mine_cleaned.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_an_empty_label_column_is_an_error(tmp_path):
    path = write_csv(tmp_path, [{"full_path": f"img/{i}.png", "emotion": None} for i in range(4)])
    with pytest.raises(DataError, match="column 'emotion' has no labels"):
        load_table(path)


def test_negative_labels_are_errors_not_missing(tmp_path):
    path = write_csv(tmp_path, [{"full_path": f"img/{i}.png", "emotion": i - 1} for i in range(4)])
    with pytest.raises(DataError, match=r"row 0 \(line 2\): column 'emotion' value -1 is out of range"):
        load_table(path)


def test_duplicated_image_paths_are_removed_before_splitting(tmp_path, capsys):
    rows = [{"full_path": f"img/{i % 4}.png", "emotion": i % 7} for i in range(10)]
    table = load_table(write_csv(tmp_path, rows))
    assert len(table) == 4 and len(set(table.paths)) == 4
    assert table.labels["emotion"].tolist() == [0, 1, 2, 3]  # the first row of each path is kept
    assert "removed 6 rows whose image path repeats" in capsys.readouterr().err


def test_messages_are_plain_single_lines(tmp_path):
    path = write_csv(tmp_path, [{"full_path": "img/0.png", "emotion": 2.5}, {"full_path": "img/1.png", "emotion": 1}])
    with pytest.raises(DataError, match=r"non-integer value '2.5'$"):
        load_table(path)
    bad = tmp_path / "db" / "broken_cleaned.csv"
    bad.write_text('full_path,emotion\n"img/0.png,1\nimg/1.png,2,3,4\n')
    with pytest.raises(DataError) as info:
        load_table(str(bad))
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="'nonexistent' is not a known dataset .*fer2013"):
        load_table("nonexistent", tmp_path)


# ------------------------------------------------------------------------------------ flags
@pytest.mark.parametrize("argv, expected", [
    (["--is_naive=True", "--is_pesudo=True"], "--is_naive=True and --is_pesudo=True contradict"),
    (["--is_pesudo=True", "--is_pesudo_distribution=True", "--cluster_k=0"], "--cluster_k=0"),
    (["--is_distilled=True", "--distill_t=0"], "--distill_t=0"),
    (["--is_naive=True", "--is_MRF=True"], "--is_MRF=True refines pseudo labels"),
    (["--is_naive=True", "--model=mini_xception", "--is_bn=True"], "--is_bn=True"),
    (["--is_naive=True", "--model=mini_xception", "--cross_stitch=True"], "--cross_stitch=True"),
    (["--epochs=3"], "did you mean --epoch?"),
    (["--is_naive=True", "--augment_low_res=0.5"], "--augment_low_res=0.5 acts only with --is_augmentation=True"),
    (["--is_naive=True", "--is_augmentation=True", "--augment_low_res=2"], "is a share of the images, in [0, 1]"),
    (["--is_naive=True", "--augment_surround=0.5"], "--augment_surround=0.5 acts only with --is_augmentation=True"),
    (["--is_naive=True", "--is_augmentation=True", "--augment_surround=-1"], "--augment_surround=-1 is a share"),
])
def test_contradictory_inert_or_misspelt_flags_stop_with_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as info:
        parse_command("CONFUSION_EP_multitask", argv)
    assert info.value.code == 2 and expected in capsys.readouterr().err


def test_precise_bn_without_joint_epochs_is_an_inert_flag(capsys):
    with pytest.raises(SystemExit) as info:
        parse_command("ALTERNATIVE_EP", ["--is_naive=True", "--precise_bn", "--warmup_epochs=0"])
    assert info.value.code == 2 and "--precise_bn acts on joint epochs" in capsys.readouterr().err
    cfg, _ = parse_command("ALTERNATIVE_EP", ["--is_naive=True", "--precise_bn"])  # its joint warm-up epoch
    assert cfg.precise_bn


def test_seed_style_unused_values_still_pass():
    cfg, _ = parse_command("ALTERNATIVE_EP", ["--is_distilled=True", "distill_t=1", "--cluster_k=0",
                                               "--selection_threshold=0"])
    assert cfg.pseudo.mode == "distilled" and cfg.pseudo.distill_t == 1


def test_resume_takes_more_epochs_and_refuses_other_flags(toy_root, tmp_path, capsys):
    assert stl(toy_root, tmp_path, "--run_name=r") == 0
    run = tmp_path / "STL_general_train" / "r"
    with pytest.raises(SystemExit):
        main("STL_general_train", [f"--resume={run}", "--lr=0.1"])
    assert "not: --lr" in capsys.readouterr().err
    assert main("STL_general_train", [f"--resume={run}", "--epoch=2"]) == 0
    assert metrics_epochs(run) == ["1", "2"]
    config = json.loads((run / "config.json").read_text())
    assert config["epoch"] == 2 and config["resumed_with"] == [{"epoch": 2}]


def test_stl_uses_the_only_task_of_a_single_task_dataset(capsys):
    cfg, _ = parse_command("STL_general_train", ["--dataset=toy_emotion"])
    assert cfg.datasets == [["toy_emotion", ["emotion"]]]
    assert "labels only emotion" in capsys.readouterr().err
    cfg, _ = parse_command("STL_general_train", [])  # the reference's default: IMDB gender
    assert cfg.datasets == [["imdb", ["gender"]]]


def test_usage_errors_come_before_tensorflow_is_imported():
    res = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "STL_general_train.py"), "--epochs=2"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "did you mean --epoch?" in res.stderr
    assert "tensorflow" not in res.stderr.replace("did you mean", "")


@pytest.mark.parametrize("name", ["../../escape", "/tmp/absolute", "..", "a/b"])
def test_run_names_stay_inside_the_runs_folder(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main("STL_general_train", ["--dataset=toy_emotion", f"--run_name={name}", f"--output_dir={tmp_path}"])
    assert exc.value.code == 2 and "a run name is one folder name" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_every_missing_dataset_of_a_line_is_named_before_tensorflow_loads(tmp_path):
    res = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "ALTERNATIVE_EP.py"), "--dataset_emotion=expw",
                          "--dataset_pose=aflw", f"--data_dir={tmp_path}"], capture_output=True, text=True)
    err = [line for line in res.stderr.splitlines() if not line.startswith("import time")]
    assert res.returncode == 1 and len(err) == 1 and "'expw'" in err[0] and "'aflw'" in err[0]
    assert "tensorflow" not in res.stderr


@pytest.mark.parametrize("signal_name", ["Ctrl-C", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_with_how_to_resume(signal_name, toy_root, tmp_path, capsys, monkeypatch):
    import utils.cli as cli
    import utils.engine.probe as probe

    original, calls = probe.Probe.evaluate, {"n": 0}

    def interrupted(*args, **kwargs):  # the second epoch's validation is interrupted
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt if signal_name == "Ctrl-C" else cli.Stopped("SIGTERM")
        return original(*args, **kwargs)

    monkeypatch.setattr(probe.Probe, "evaluate", interrupted)
    code = main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=3", *FAST,
                                      f"--data_dir={toy_root}", f"--output_dir={tmp_path}", "--run_name=s"])
    err = capsys.readouterr().err
    assert code == (130 if signal_name == "Ctrl-C" else 143) and "Traceback" not in err
    assert f"stopped by {signal_name}" in err and "--resume" in err and str(tmp_path / "STL_general_train" / "s") in err
    assert json.loads((tmp_path / "STL_general_train" / "s" / "state.json").read_text())["epoch"] == 0


def test_a_resume_after_a_kill_between_the_first_checkpoint_and_state_json_says_so(tmp_path, capsys):
    run = tmp_path / "STL_general_train" / "r"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"script": "STL_general_train", "mode": "stl",
                                                 "datasets": [["toy_emotion", ["emotion"]]], "pseudo": {}}))
    (run / "checkpoint-000.keras").write_bytes(b"PK")
    assert main("STL_general_train", [f"--resume={run}"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint-000.keras" in err and "start the run again" in err


def test_a_class_without_training_rows_is_named(toy_root, tmp_path, capsys):
    frame = pd.read_csv(toy_root / "db" / "toy_emotion_cleaned.csv")
    frame = frame[frame.emotion != 1].copy()  # no disgust
    frame["full_path"] = [str(toy_root / p) for p in frame.full_path]
    (tmp_path / "db").mkdir()
    frame.to_csv(tmp_path / "db" / "nodisgust_cleaned.csv", index=False)
    from utils.engine import class_counts, load_splits
    from utils.engine.config import RunConfig
    from utils.logs import setup_logging

    setup_logging()
    cfg = RunConfig("STL_general_train", "stl", [["nodisgust", ["emotion"]]], data_dir=str(tmp_path),
                    image_check="exists")
    class_counts(load_splits(cfg), cfg)
    assert "note: nodisgust: no training row of emotion class disgust" in capsys.readouterr().err


def test_export_into_a_read_only_folder_is_one_line(tmp_path, capsys):
    import os

    from models import ModelSpec, build_net
    from utils.export import main as export_main

    model = tmp_path / "m.keras"
    build_net(ModelSpec("mini_xception", {"emotion": 7}, input_size=32)).save(model)
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): the folder is not read-only")
        assert export_main(["--model", str(model), "--out", str(locked / "x"), "--formats", "tflite"]) == 1
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        os.chmod(locked, 0o700)


def test_the_evaluator_names_why_a_model_cannot_be_loaded_and_takes_test_only_tables(toy_root, tmp_path, capsys):
    from utils.evaluate import main as evaluate_main

    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    assert evaluate_main(["--model", str(text), "--dataset", "toy_emotion", "--data_dir", str(toy_root)]) == 1
    err = capsys.readouterr().err
    assert "not a loadable Keras model (" in err and ": " in err.split("(", 1)[1]  # the reason, not only its type
    from models import ModelSpec, build_net

    model = tmp_path / "m.keras"
    build_net(ModelSpec("mini_xception", {"emotion": 7}, input_size=32)).save(model)
    frame = pd.read_csv(toy_root / "db" / "toy_emotion_cleaned.csv").head(30)
    frame["full_path"] = [str(toy_root / p) for p in frame.full_path]
    frame = frame[["full_path", "emotion"]].assign(split="test")  # a test-only set of another name
    (tmp_path / "db").mkdir()
    frame.to_csv(tmp_path / "db" / "heldout_cleaned.csv", index=False)
    assert evaluate_main(["--model", str(model), "--dataset", "heldout", "--data_dir", str(tmp_path),
                          "--split", "test"]) == 0  # no --task: the emotion column says it
    out = capsys.readouterr().out
    assert "heldout test emotion: accuracy" in out and "(n = 30)" in out
    assert (tmp_path / "eval" / "m-keras_heldout_test" / "metrics.json").is_file()  # beside the data
