"""Test-time views chosen per head (utils/views.py) and the demos' predictor that averages over them."""
import numpy as np
import pytest

from utils.demo import Predictor, load_predictor
from utils.runtime import SHIPPED_MODEL
from utils.views import ARMS, IDENTITY, head_arms, per_head, view, views_needed

NAMES = {"gender": ["male", "female"], "pose": ["yaw <= -60", "yaw -60..-10", "frontal", "yaw +10..+60",
                                                 "yaw >= +60"]}


def test_a_view_moves_and_zooms_the_crop_about_its_centre():
    img = np.zeros((1, 50, 50, 1), np.float32)
    img[0, 25, 25, 0] = 255.0
    assert view(img, *IDENTITY) is img
    moved = view(img, 1.0, 0.02, 0)  # centre moved right by 1 px: the content moves left by 1 px
    assert np.unravel_index(moved[0, ..., 0].argmax(), (50, 50)) == (25, 24)
    flat = np.full((2, 40, 40, 1), 90.0, np.float32)
    assert np.allclose(view(flat, 1.05, 0, 0), 90.0)  # zoom-out fills with the replicated border
    ramp = np.tile(np.arange(40, dtype=np.float32), (1, 40, 1))[..., None]
    zoomed = view(ramp, 0.95, 0, 0)[0, 20, :, 0]
    assert zoomed[-2] - zoomed[1] < ramp[0, 20, -2, 0] - ramp[0, 20, 1, 0]  # zoom-in: less of the ramp in view


def test_heads_take_their_arm_from_the_config_and_flip_otherwise():
    arms = head_arms({"test_views": {"gender": "scales"}}, ["gender", "pose"])
    assert arms == {"gender": "scales", "pose": "flip"}
    assert head_arms({}, ["age"]) == {"age": "flip"}
    with pytest.raises(ValueError, match="'zooms'"):
        head_arms({"test_views": {"age": "zooms"}}, ["age"])
    needed = views_needed({"a": "shifts", "b": "scales", "c": "flip"})
    assert needed[0] == IDENTITY and len(needed) == len(set(needed)) == 7  # 5 shifts + 2 scales, identity once
    outputs = {v: ({"a": np.full((3, 2), k)}, {"a": np.full((3, 2), -k)}) for k, v in enumerate(needed)}
    stacked = per_head(outputs, {"a": "scales"})["a"]
    assert stacked.shape == (6, 3, 2)  # 3 views, each with its mirror image


def _forward_reading_the_pixels(batch):
    """A fake model whose outputs depend on each image's pixels and on its left-right asymmetry."""
    mean = batch.mean((1, 2, 3)) / 255.0
    tilt = (batch[:, :, :4].mean((1, 2, 3)) - batch[:, :, -4:].mean((1, 2, 3))) / 255.0
    gender = np.stack([mean, 1 - mean], 1)
    pose = np.stack([0.1 + tilt.clip(0), 0.2 + 0 * mean, 0.4 + 0 * mean, 0.2 + 0 * mean, 0.1 + (-tilt).clip(0)], 1)
    return {"gender_prediction": gender, "pose_prediction": pose / pose.sum(1, keepdims=True)}


def test_the_predictor_averages_each_head_over_its_own_views():
    rng = np.random.default_rng(0)
    crops = [rng.uniform(0, 255, (32, 32, 1)).astype(np.float32) for _ in range(3)]
    calls = []

    def forward(batch):
        calls.append(len(batch))
        return _forward_reading_the_pixels(batch)

    base = dict(forward=forward, tasks=["gender", "pose"], class_names=NAMES, size=32, channels=1, source="fake")
    flip_only = Predictor(**base).predict(crops)
    assert calls == [6]  # one pass: three faces and their mirror images
    mixed = Predictor(**base, views={"gender": "scales"}).predict(crops)
    assert calls[-1] == 3 * 2 * 3  # one pass: three views of three faces, each mirrored
    batch = np.stack(crops)
    expected = np.mean([_forward_reading_the_pixels(x)["gender_prediction"]
                        for v in ARMS["scales"] for x in (view(batch, *v), view(batch, *v)[:, :, ::-1])], 0)
    for i in range(3):
        assert np.allclose(mixed[i]["gender"], expected[i])
        assert np.allclose(mixed[i]["pose"], flip_only[i]["pose"])  # pose keeps the flip
    assert not np.allclose(mixed[0]["gender"], flip_only[0]["gender"])


def test_the_shipped_config_names_known_arms():
    if not SHIPPED_MODEL.is_file():
        pytest.skip("the shipped model is not in this checkout")
    predictor = load_predictor()
    assert set(predictor.views.values()) <= set(ARMS) and set(predictor.views) == set(predictor.tasks)


def test_the_demos_views_flag_keeps_trims_or_drops_the_views():
    import argparse

    from utils.demo import add_model_flags, apply_model_flags

    p = argparse.ArgumentParser()
    add_model_flags(p)
    base = dict(forward=_forward_reading_the_pixels, tasks=["gender", "pose"], class_names=NAMES, size=32,
                channels=1, source="fake")
    chosen = {"gender": "scales", "pose": "five_crops"}
    model = apply_model_flags(Predictor(**base, views=dict(chosen)), p.parse_args([]))
    assert model.flip and model.views == chosen
    flip = apply_model_flags(Predictor(**base, views=dict(chosen)), p.parse_args(["--views", "flip"]))
    assert flip.flip and flip.views == {}
    flags = p.parse_args(["--views", "none", "--margin", "0.3"])
    none = apply_model_flags(Predictor(**base, views=dict(chosen)), flags)
    assert not none.flip and none.margin == 0.3
    with pytest.raises(SystemExit):
        p.parse_args(["--views", "zooms"])


def test_tta_views_writes_each_heads_arm_chosen_on_validation_only(toy_root, tmp_path, capsys):
    import json

    from benchmarks import tta_views
    from utils.cli import main as train_main

    assert train_main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=1", "--batch_size=32",
                                            "--input_size=32", "--limit=96", f"--data_dir={toy_root}",
                                            f"--output_dir={tmp_path}", "--run_name=r"]) == 0
    run = tmp_path / "STL_general_train" / "r"
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "test_views": {"pose": "shifts"}}))
    argv = ["--model", str(run / "best.keras"), "--datasets", "toy_emotion", "--data_dir", str(toy_root)]
    with pytest.raises(SystemExit):  # a test part chooses nothing
        tta_views.main([*argv, "--split", "test", "--write_views"])
    assert tta_views.main([*argv, "--write_views"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("toy_emotion: emotion: "))
    best, gain = line.split(": ")[2].split(", gain ")
    views = json.loads((run / "config.json").read_text())["test_views"]
    assert views["pose"] == "shifts"  # a head it did not measure keeps its arm
    assert views["emotion"] == (best if float(gain.split()[0]) >= tta_views.MIN_GAIN["classes"] else "flip")
