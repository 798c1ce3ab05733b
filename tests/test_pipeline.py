"""The tf.data pipeline: shapes, dtypes, seeded shuffling, grey conversion, cache equivalence."""
import cv2
import numpy as np
import pytest

from utils.datasets import load_table
from utils.pipelines import ImageCache, joint_arrays, make_dataset, prepare_image, true_targets
from utils.targets import onehot


@pytest.fixture(scope="module")
def tables(toy_root):
    return [load_table("toy_emotion", toy_root), load_table("toy_gender_age", toy_root)]


def first_batch(ds):
    return next(iter(ds))


def test_batches_have_model_shapes_and_dtypes(tables):
    t = tables[0]
    x, y = first_batch(make_dataset(t.paths, true_targets(t, {"emotion": 7}), 16, 64, 1))
    assert x.shape == (16, 64, 64, 1) and x.dtype.name == "float32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 255.0
    assert y["emotion_prediction"].shape == (16, 7)
    x3, _ = first_batch(make_dataset(t.paths, true_targets(t, {"emotion": 7}), 4, 96, 3))
    assert x3.shape == (4, 96, 96, 3)


def test_grey_conversion_matches_opencv(tables):
    path = tables[0].paths[0]
    ours = prepare_image(cv2.imread(path)[..., ::-1], 64, 1).numpy()[..., 0]
    ref = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY).astype(np.float32)  # files are 64x64
    assert np.abs(ours - ref).max() <= 1.0


def test_shuffle_is_seeded_per_epoch(tables):
    t = tables[0]
    tg = {"emotion": onehot(np.arange(len(t)) % 7, 7)}
    order = lambda **kw: np.concatenate([y["emotion_prediction"].numpy().argmax(1)  # noqa: E731
                                         for _, y in make_dataset(t.paths, tg, 32, 64, 1, shuffle=True, **kw)])
    a, b = order(seed=1, repeat_epoch=0), order(seed=1, repeat_epoch=0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, order(seed=1, repeat_epoch=1))
    assert sorted(a.tolist()) == sorted((np.arange(len(t)) % 7).tolist())


def test_cached_images_equal_decoded_images(tables):
    t = tables[0]
    tg = true_targets(t, {"emotion": 7})
    cache = ImageCache(t.paths, 64, 1)
    x_files, y_files = first_batch(make_dataset(t.paths, tg, 8, 64, 1))
    x_cache, y_cache = first_batch(make_dataset(t.paths, tg, 8, 64, 1, cache=cache))
    assert np.abs(x_files.numpy() - x_cache.numpy()).max() <= 0.5  # uint8 rounding only
    np.testing.assert_array_equal(y_files["emotion_prediction"], y_cache["emotion_prediction"])


def test_disk_cache_equals_the_memory_cache_and_is_reused_until_a_file_changes(tables, tmp_path):
    t = tables[0]
    tg = true_targets(t, {"emotion": 7})
    memory = ImageCache(t.paths, 32, 1)
    disk = ImageCache(t.paths, 32, 1, disk_dir=str(tmp_path / "cache"))
    assert disk.path.exists() and not list(disk.path.parent.glob(".*.tmp"))  # written whole, then renamed
    order = np.random.default_rng(0).permutation(len(t))
    x_mem, _ = first_batch(make_dataset(t.paths[order], {k: v[order] for k, v in tg.items()}, 16, 32, 1,
                                        cache=memory))
    x_disk, _ = first_batch(make_dataset(t.paths[order], {k: v[order] for k, v in tg.items()}, 16, 32, 1,
                                         cache=disk))
    np.testing.assert_array_equal(x_mem.numpy(), x_disk.numpy())
    written = disk.path.stat().st_mtime_ns
    again = ImageCache(t.paths, 32, 1, disk_dir=str(tmp_path / "cache"))
    assert again.path == disk.path and disk.path.stat().st_mtime_ns == written  # reused, not rewritten
    import os

    os.utime(t.paths[0], ns=(1, 1))  # a changed image file makes a new cache
    assert ImageCache(t.paths, 32, 1, disk_dir=str(tmp_path / "cache")).path != disk.path


def test_augmentation_changes_pixels_not_shapes(tables):
    t = tables[0]
    tg = true_targets(t, {"emotion": 7})
    plain, _ = first_batch(make_dataset(t.paths, tg, 8, 64, 1))
    aug, _ = first_batch(make_dataset(t.paths, tg, 8, 64, 1, augment=True, seed=3))
    assert aug.shape == plain.shape and np.abs(aug.numpy() - plain.numpy()).mean() > 1.0


def test_augmented_batches_depend_on_their_seed_alone(tables):
    """Batches are augmented in parallel; each must be the same on every pass with the same seed (Keras's
    random layers shared one seed state across the parallel calls, so runs with one seed differed)."""
    t = tables[0]
    tg = true_targets(t, {"emotion": 7})
    cache = ImageCache(t.paths, 32, 1)

    def batches(seed):
        return [x.numpy() for x, _ in make_dataset(t.paths, tg, 8, 32, 1, shuffle=True, seed=seed, augment=True,
                                                    zoom=0.1, cache=cache)]

    first, again, other = batches(1), batches(1), batches(2)
    assert len(first) == 15 and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_the_affine_rows_shift_and_rotate_about_the_centre():
    import keras
    import tensorflow as tf

    from utils.pipelines import affine_rows

    img = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)

    def apply(theta, tx, ty, scale):
        rows = affine_rows(*(tf.constant([v], tf.float32) for v in (theta, tx, ty, scale)), 5.0, 5.0)
        out = keras.ops.image.affine_transform(img, rows, interpolation="bilinear", fill_mode="constant")
        return np.asarray(out)[0, :, :, 0]

    np.testing.assert_allclose(apply(0, 1, 0, 1)[:, 1:], img[0, :, :-1, 0])  # one pixel to the right
    np.testing.assert_allclose(apply(0, 0, 1, 1)[1:], img[0, :-1, :, 0])  # one pixel down
    np.testing.assert_allclose(apply(np.pi / 2, 0, 0, 1), np.rot90(img[0, :, :, 0], k=-1), atol=1e-4)
    np.testing.assert_allclose(apply(0, 0, 0, 2)[2, 2], 12.0)  # the centre stays where it is
    np.testing.assert_allclose(apply(0, 0, 0, 2)[2, 4], 13.0, atol=1e-5)  # 2 px out shows 1 px out


def test_joint_arrays_zero_fill_missing_tasks(tables):
    classes = {"emotion": 7, "gender": 2, "age": 8}
    paths, targets = joint_arrays(tables, classes)
    n0 = len(tables[0])
    assert len(paths) == n0 + len(tables[1])
    assert targets["emotion"][:n0].sum(1).min() == 1 and targets["emotion"][n0:].sum() == 0
    assert targets["age"][:n0].sum() == 0 and targets["age"][n0:].sum(1).min() == 1
    fill = np.full((n0, 2), 0.5, np.float32)
    _, filled = joint_arrays(tables, classes, {(0, "gender"): fill})
    np.testing.assert_array_equal(filled["gender"][:n0], fill)


def test_horizontal_flip_swaps_the_yaw_bins_of_flipped_faces():
    import tensorflow as tf

    from utils.pipelines import flip_batch
    from utils.tasks import POSE5, flip_permutations

    perms = {f"{t}_prediction": p for t, p in flip_permutations({"pose": POSE5, "emotion": range(7)}).items()}
    assert perms == {"pose_prediction": (0, 2, 1, 4, 3)}  # emotion is flip-invariant
    images = tf.constant(np.arange(64 * 2 * 4 * 1, dtype=np.float32).reshape(64, 2, 4, 1))
    pose = onehot(np.arange(64) % 5, 5)
    emotion = onehot(np.arange(64) % 7, 7)
    out, y = flip_batch(images, {"pose_prediction": pose, "emotion_prediction": emotion}, [3, 4], perms)
    flipped = np.all(out.numpy() == images.numpy()[:, :, ::-1], axis=(1, 2, 3))
    assert 10 < flipped.sum() < 54  # about half the rows, chosen per row
    before, after = pose.argmax(1), y["pose_prediction"].numpy().argmax(1)
    swap = np.array([0, 2, 1, 4, 3])
    assert np.array_equal(after[flipped], swap[before[flipped]])
    assert np.array_equal(after[~flipped], before[~flipped])
    assert np.array_equal(np.asarray(y["emotion_prediction"]), emotion)
    # a row without a pose label (zeros) stays without one
    _, y0 = flip_batch(images[:4], {"pose_prediction": np.zeros((4, 5), np.float32)}, [1, 1], perms)
    assert not y0["pose_prediction"].numpy().any()


def test_a_foreign_surround_replaces_only_the_border_and_keeps_the_centre():
    """Drawn rows take the next image's pixels outside a box at most 15 % in from each edge; the centre
    (where the face is) stays the row's own; undrawn rows are untouched; the same seed, the same rows."""
    import tensorflow as tf

    from utils.pipelines import SURROUND_MAX, surround_batch

    batch = tf.constant(np.arange(1.0, 17.0, dtype=np.float32)[:, None, None, None] * np.ones((1, 64, 64, 1)))
    every = surround_batch(batch, (1, 2), 1.0).numpy()
    band = int(np.ceil(SURROUND_MAX * 64))
    centre = every[:, band:-band, band:-band]
    assert np.array_equal(centre, batch.numpy()[:, band:-band, band:-band])
    assert np.array_equal(np.unique(every[5]), [5.0, 6.0])  # row 5 (value 6) took row 4's (value 5) surround
    foreign = (every != batch.numpy()).mean(axis=(1, 2, 3))
    assert foreign.min() > 0 and foreign.max() < 1 - (1 - 2 * SURROUND_MAX) ** 2 + 1e-6
    half = surround_batch(batch, (3, 4), 0.5).numpy()
    assert 0 < (half != batch.numpy()).any(axis=(1, 2, 3)).sum() < 16
    assert np.array_equal(half, surround_batch(batch, (3, 4), 0.5).numpy())
    assert np.array_equal(surround_batch(batch, (3, 4), 0.0).numpy(), batch.numpy())


def test_low_resolution_copies_lose_fine_detail_only_in_the_drawn_rows():
    """A one-pixel checkerboard shrunk and enlarged back loses its contrast; ``share`` picks the rows."""
    import tensorflow as tf

    from utils.pipelines import low_res_batch

    board = (np.indices((64, 64)).sum(0) % 2 * 255.0).astype(np.float32)[None, :, :, None]
    batch = tf.constant(np.repeat(board, 16, axis=0))
    untouched = low_res_batch(batch, (1, 2), 0.0).numpy()
    every = low_res_batch(batch, (1, 2), 1.0).numpy()
    half = low_res_batch(batch, (3, 4), 0.5).numpy()
    assert np.array_equal(untouched, batch.numpy())
    assert every.shape == batch.shape and every.std(axis=(1, 2, 3)).max() < 0.5 * board.std()
    changed = (np.abs(half - batch.numpy()).mean(axis=(1, 2, 3)) > 1.0).sum()
    assert 0 < changed < 16
    assert np.array_equal(half, low_res_batch(batch, (3, 4), 0.5).numpy())
