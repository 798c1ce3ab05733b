"""Weight averaging (utils/average_weights.py) of the checkpoints a run keeps with --keep_checkpoints."""
import json

import numpy as np
import pytest

from utils.cli import main as train_main
from utils.datasets import DataError


@pytest.fixture(scope="module")
def kept_run(toy_root, tmp_path_factory):
    """A 2-epoch toy STL run that keeps both epochs' checkpoints."""
    out = tmp_path_factory.mktemp("runs")
    code = train_main("STL_general_train", ["--dataset=toy_emotion", "--task_type=0", "--epoch=2", "--batch_size=32",
                                            "--model=mini_xception", "--image_check=exists", "--keep_checkpoints",
                                            f"--data_dir={toy_root}", f"--output_dir={out}", "--run_name=k"])
    assert code == 0
    return out / "STL_general_train" / "k"


def test_kept_checkpoints_are_averaged_weight_by_weight(kept_run):
    from models import load_model
    from utils.average_weights import average_models

    paths = sorted(kept_run.glob("checkpoint-*.keras"))
    assert [p.name for p in paths] == ["checkpoint-000.keras", "checkpoint-001.keras"]  # none deleted
    first, second = (load_model(p).get_weights() for p in paths)
    averaged = average_models([str(p) for p in paths]).get_weights()
    changed = [i for i, (a, b) in enumerate(zip(first, second)) if not np.allclose(a, b)]
    assert changed  # training moved the weights between the epochs
    for i in changed:
        np.testing.assert_allclose(averaged[i], (first[i] + second[i]) / 2, rtol=1e-5, atol=1e-6)


def test_batchnorm_statistics_are_estimated_for_the_average_not_carried_over(kept_run, toy_root, tmp_path):
    from models import load_model
    from utils.average_weights import main
    from utils.engine.batchnorm import BatchNormStats

    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    net = load_model(kept_run / "checkpoint-001.keras")
    bn = BatchNormStats(net)
    true_means = [m for m, _ in bn.get()]
    bn.set([(m + 50.0, v * 9.0) for m, v in bn.get()])  # statistics no image produced
    net.save(broken_dir / "checkpoint-001.keras")
    config = json.loads((kept_run / "config.json").read_text())
    (broken_dir / "config.json").write_text(json.dumps({**config, "temperatures": {"emotion": 1.3}}))
    out = tmp_path / "avg"
    assert main(["--models", str(broken_dir / "checkpoint-001.keras"), "--out", str(out),
                 f"--data_dir={toy_root}"]) == 0
    fresh = BatchNormStats(load_model(out / "model.keras")).get()
    # re-estimated on the training images: back near the trained model's own statistics, far from +50
    assert max(float(np.abs(m - t).max()) for (m, _), t in zip(fresh, true_means)) < 5.0
    written = json.loads((out / "config.json").read_text())
    assert "temperatures" not in written  # they belonged to the members' outputs
    assert written["averaged_from"]["batchnorm_images"] > 0


def test_models_of_different_architectures_are_refused(kept_run, tmp_path):
    import keras

    from utils.average_weights import average_models

    inp = keras.Input((8,))
    other = keras.Model(inp, keras.layers.Dense(2, name="emotion_prediction")(inp))
    other.save(tmp_path / "other.keras")
    with pytest.raises(DataError, match="other.keras: not the architecture"):
        average_models([str(kept_run / "checkpoint-000.keras"), str(tmp_path / "other.keras")])
