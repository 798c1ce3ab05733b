"""utils/prior_shift.py: a head's logits moved from its training prior to a uniform one, in the weights."""
import json

import numpy as np
import pytest

from utils.calibration import prior_offsets


def test_offsets_remove_the_prior_the_loss_saw():
    counts = np.array([10, 40, 50])
    plain = prior_offsets(counts, 0.0)
    np.testing.assert_allclose(plain, -np.log(counts / 100) + np.log(counts / 100).mean())
    np.testing.assert_allclose(prior_offsets(counts, 0.5), plain / 2)  # sqrt balance: prior ~ n ** 0.5
    np.testing.assert_allclose(prior_offsets(counts, 1.0), 0.0, atol=1e-12)  # inverse: the loss saw no prior
    assert plain[0] > plain[1] > plain[2] and abs(plain.sum()) < 1e-12
    with pytest.raises(ValueError, match="every class needs training rows"):
        prior_offsets([3, 0, 5])


def test_the_shifted_model_answers_softmax_of_logits_plus_offsets(toy_root, tmp_path):
    import keras

    from models import ModelSpec, build_net, load_model
    from utils.evaluate import predictions, select_rows
    from utils.prior_shift import main

    keras.utils.set_random_seed(0)
    src = tmp_path / "model"
    src.mkdir()
    build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, input_size=32)).save(src / "model.keras")
    config = {"datasets": [["toy_emotion", ["emotion"]], ["toy_pose", ["pose"]]], "class_balance": "sqrt",
              "seed": 1, "fold": 0, "n_splits": 5, "val_fraction": 0.1, "temperatures": {"emotion": 0.9, "pose": 1.3}}
    (src / "config.json").write_text(json.dumps(config))
    before = (src / "model.keras").read_bytes()
    out = tmp_path / "shifted"
    assert main(["--model", str(src / "model.keras"), "--out", str(out), "--data_dir", str(toy_root)]) == 0

    written = json.loads((out / "config.json").read_text())
    train, _, _ = select_rows({"pose": 5}, config, "toy_pose", "train", ["pose"], toy_root)
    counts = np.bincount(train.labels["pose"], minlength=5)
    assert written["prior_shift"]["pose"]["train_counts"] == counts.tolist()
    offsets = np.array(written["prior_shift"]["pose"]["offsets"])
    np.testing.assert_allclose(offsets, prior_offsets(counts, 0.5), atol=1e-6)
    assert written["temperatures"] == {"emotion": 0.9}  # the pose temperature must be fitted again
    assert (src / "model.keras").read_bytes() == before

    plain, _, _ = predictions(load_model(src / "model.keras"), config, "toy_pose", "test", ["pose"], toy_root)
    shifted, _, _ = predictions(load_model(out / "model.keras"), written, "toy_pose", "test", ["pose"], toy_root)
    expected = plain["pose"] * np.exp(offsets)
    np.testing.assert_allclose(shifted["pose"], expected / expected.sum(1, keepdims=True), atol=1e-5)
    emotion = [predictions(load_model(d / "model.keras"), config, "toy_emotion", "test", ["emotion"], toy_root)[0]
               for d in (src, out)]
    np.testing.assert_allclose(emotion[0]["emotion"], emotion[1]["emotion"], atol=1e-6)  # other heads untouched


def test_a_shifted_head_or_the_models_own_folder_is_refused(toy_root, tmp_path, capsys):
    from models import ModelSpec, build_net
    from utils.prior_shift import main

    build_net(ModelSpec("mini_xception", {"pose": 5, "gender": 2}, input_size=32)).save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({"datasets": [["toy_pose", ["pose"]]],
                                                      "prior_shift": {"pose": {"offsets": [0] * 5}}}))
    assert main(["--model", str(tmp_path / "model.keras"), "--out", str(tmp_path)]) == 1
    assert "the model's own folder" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "o")]) == 1
    assert "already shifted" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "model.keras"), "--task", "gender", "--out", str(tmp_path / "o")]) == 1
    assert "names no training dataset that labels 'gender'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
