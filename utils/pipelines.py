"""tf.data input pipelines driven by the cleaned CSVs (STL, joint "confusion" and alternating).

Every pipeline is built the same way: numpy arrays of image paths and per-task target rows (zeros =
missing, soft or weighted rows = pseudo / distilled targets) go through ``make_dataset``, which
decodes, resizes, converts to grey for one-channel models, augments, shuffles per epoch with a seed,
batches and prefetches, all inside TensorFlow: no Python runs per image (the disk-backed image cache
runs one numpy gather per batch).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from utils.datasets import Table
from utils.kinds import kind_of

# tf.data's autotuner is switched off: with it on, deleting an iterator waited for the tuning thread,
# for up to ~0.6 s per pass on two CPU cores (a one-off measurement alternating both settings in one
# process: a 1,080-image prediction pass, median 635 -> 379 ms; half of the 17-step epochs ended
# 0.5-0.9 s after their last step). Training makes many short passes (each epoch, the teacher,
# BatchNorm estimation, validation), so fixed parallelism (one call per core) and a two-batch
# prefetch serve it better.
PARALLEL = os.cpu_count() or 2
PREFETCH = 2
OPTIONS = tf.data.Options()
OPTIONS.autotune.enabled = False


def _finish(ds):
    return ds.prefetch(PREFETCH).with_options(OPTIONS)


def load_image(path, size: int, channels: int):
    """Read, decode (JPEG/PNG/BMP/GIF) and resize one image to float32 pixels in [0, 255].

    Grey images are expanded to RGB first and RGB is reduced with ITU-R 601 weights (the same as
    OpenCV's BGR2GRAY) for one-channel models, so every input format gives the same layout.
    """
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return prepare_image(img, size, channels)


def prepare_image(img, size: int, channels: int):
    """Resize an RGB uint8 image (H, W, 3) to the model's input; shared by training and the demos.

    Shrinking uses area averaging (a box filter: no aliasing, twice as fast as anti-aliased
    bilinear), enlarging uses bilinear interpolation.
    """
    img = tf.convert_to_tensor(img)
    shape = tf.shape(img)
    shrink = tf.logical_and(shape[0] >= size, shape[1] >= size)
    img = tf.cond(shrink, lambda: tf.image.resize(img, (size, size), method="area"),
                  lambda: tf.image.resize(img, (size, size), method="bilinear"))
    img = tf.clip_by_value(tf.cast(img, tf.float32), 0.0, 255.0)
    if channels == 1:
        img = tf.image.rgb_to_grayscale(img)
    return img


def affine_rows(theta, tx, ty, scale, height, width):
    """Rows ``[a0, a1, a2, b0, b1, b2, 0, 0]`` that map each output pixel to the input pixel it shows, for
    a rotation by ``theta`` (radians), a scale change ``scale`` about the image centre and a shift
    ``(tx, ty)`` in pixels (the form ``keras.ops.image.affine_transform`` takes)."""
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
    a2 = cx - cos * (cx + tx) - sin * (cy + ty)
    b2 = cy + sin * (cx + tx) - cos * (cy + ty)
    zero = tf.zeros_like(cos)
    return tf.stack([cos, sin, a2, -sin, cos, b2, zero, zero], axis=1)


LOW_RES_FLOOR = 0.375  # the smallest side a low-resolution copy gets, as a share of the input (24 px of 64)


def low_res_batch(images, seed, share: float):
    """A ``share`` of the images shrunk to a random side in [0.375, 1] x the input (area averaging) and
    enlarged back (bilinear), the path a small face in a photograph takes to the model: a face 30 px
    wide reads as the same face at 64 px. One side per batch (one resize for all), images drawn per row."""
    n, side = tf.shape(images)[0], tf.shape(images)[1:3]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    coin = tf.random.stateless_uniform([n], seed=seeds[0]) < share
    small = tf.cast(tf.round(tf.cast(side, tf.float32) * tf.random.stateless_uniform(
        [], seed=seeds[1], minval=LOW_RES_FLOOR, maxval=1.0)), tf.int32)
    blurred = tf.image.resize(tf.image.resize(images, small, method="area"), side, method="bilinear")
    return tf.where(coin[:, None, None, None], tf.cast(blurred, images.dtype), images)


SURROUND_MAX = 0.15  # the widest band, per edge, that ``surround_batch`` takes from another face


def surround_batch(images, seed, share: float):
    """A ``share`` of the images get their surround from the batch's next image: outside a random box
    whose four edges each lie 0-15 % of the side in, the pixels are that other face's.

    UTKFace's aligned training crops end in a smear (its chips stop inside the aligned crop, mostly above
    the face, and are padded by replication), so a model trained on them reads what lies there at
    inference: with the face's own keypoints, the neighbours of a 2 x 2 collage moved the shipped model's
    age by more than 3 years for 9 % of UTKFace faces (``benchmarks/consistency.py``, its last line).
    Showing it foreign surrounds, another face's in particular, teaches it to read the face. Images are
    drawn per row."""
    n, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    coin = tf.random.stateless_uniform([n], seed=seeds[0]) < share
    edges = tf.random.stateless_uniform([n, 4], seed=seeds[1], minval=0.0, maxval=SURROUND_MAX)
    ys = (tf.range(height, dtype=tf.float32) + 0.5) / tf.cast(height, tf.float32)
    xs = (tf.range(width, dtype=tf.float32) + 0.5) / tf.cast(width, tf.float32)
    inside = ((xs[None, None, :] >= edges[:, 0, None, None]) & (xs[None, None, :] <= 1.0 - edges[:, 2, None, None])
              & (ys[None, :, None] >= edges[:, 1, None, None]) & (ys[None, :, None] <= 1.0 - edges[:, 3, None, None]))
    keep = inside | ~coin[:, None, None]
    return tf.where(keep[..., None], images, tf.roll(images, 1, axis=0))


def augment_batch(images, seed, zoom: float = 0.0, low_res: float = 0.0, surround: float = 0.0):
    """Rotation +-10 degrees, shift +-10 % and, with ``zoom`` > 0, a scale change of +-``zoom``, one
    affine map per image drawn from the stateless seed pair ``seed``: a batch's augmentation depends on
    its seed alone, so batches augmented in parallel stay reproducible (Keras's random layers keep one
    seed state that parallel calls race for). With ``low_res`` > 0 that share of the images is also seen
    at a lower resolution (``low_res_batch``); with ``surround`` > 0 that share gets another face's
    surround first (``surround_batch``). The flip is ``flip_batch``: it must see the labels."""
    import keras

    n = tf.shape(images)[0]
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)

    def uniform(i, limit):
        return tf.random.stateless_uniform([n], seed=seeds[i], minval=-limit, maxval=limit)

    if surround > 0:  # its own seed (folded from the pair), so that the other draws stay as they were
        images = surround_batch(images, tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 1),
                                surround)
    theta = uniform(0, 10.0 * np.pi / 180.0)
    tx, ty = uniform(1, 0.1) * width, uniform(2, 0.1) * height
    scale = 1.0 + uniform(3, zoom) if zoom > 0 else tf.ones([n])
    out = keras.ops.image.affine_transform(images, affine_rows(theta, tx, ty, scale, height, width),
                                           interpolation="bilinear", fill_mode="reflect")
    return low_res_batch(out, seeds[4], low_res) if low_res > 0 else out


def flip_batch(images, targets: dict, seed, flip_perms: dict):
    """Flip each image horizontally with p = 0.5 and change the targets of the flipped rows.

    A mirrored face turns its yaw around, so a pose target "yaw +10..+60" becomes "yaw -60..-10"
    and an angle row's yaw and roll change sign; ``flip_perms`` maps ``<task>_prediction`` keys to a
    class permutation or ``("signs", per-angle signs)`` (``utils.tasks.flip_permutations``; emotion,
    gender and age are flip-invariant). ``seed`` is a stateless seed pair, so the flips are reproducible.
    """
    coin = tf.random.stateless_uniform(tf.shape(images)[:1], seed=seed) < 0.5
    images = tf.where(coin[:, None, None, None], tf.reverse(images, axis=[2]), images)
    out = dict(targets)
    for key, perm in flip_perms.items():
        if key not in out:
            continue
        if perm[0] == "signs":  # angles then the weight column, which a flip leaves alone
            flipped = out[key] * tf.constant([*perm[1], 1.0], out[key].dtype)
        else:
            flipped = tf.gather(out[key], list(perm), axis=1)
        out[key] = tf.where(coin[:, None], flipped, out[key])
    return images, out


class ImageCache:
    """Decoded, resized images (uint8) of a fixed set of files, in memory or in a file on disk.

    Training re-reads the same images several times per epoch (the epoch itself, pseudo-label
    passes over the unlabelled and labelled sets, validation); with the cache each later pass is a
    gather instead of a JPEG decode. In memory the array lives in a ``tf.Variable`` so that tf.data
    captures it by handle instead of copying it into the graph. With ``disk_dir`` (datasets whose
    decoded images exceed the memory budget) the array is an ``.npy`` file written once and reused by
    every later run over the same files at the same size; batches are read from it with ``pread``,
    so the images sit in the operating system's page cache, not in the process's memory.
    """

    def __init__(self, paths, size: int, channels: int, batch_size: int = 256, disk_dir: str | None = None,
                 tables: list = ()):
        paths = np.asarray(sorted(set(map(str, paths))))
        self.index = {p: i for i, p in enumerate(paths)}
        self.size, self.channels = size, channels
        self.on_disk = disk_dir is not None
        if self.on_disk:
            self.shape = self._disk_array(paths, Path(disk_dir), batch_size, tables)
            return
        array = np.empty((len(paths), size, size, channels), np.uint8)  # filled in place: no list of blocks
        start = 0
        try:
            for x in _decode_dataset(paths, batch_size, size, channels):
                array[start:start + len(x)] = tf.cast(tf.round(x), tf.uint8).numpy()
                start += len(x)
        except tf.errors.InvalidArgumentError:
            raise_undecodable(paths, tables)
        self.images = tf.Variable(array, trainable=False, name="image_cache")

    def _disk_array(self, paths: np.ndarray, folder: Path, batch_size: int, tables: list = ()) -> np.ndarray:
        """Open the ``.npy`` file of ``paths`` (decoded now unless a matching file exists); its shape."""
        import hashlib

        digest = hashlib.sha1(f"{self.size}x{self.channels}".encode())
        for p in paths:  # a file that changes (size or time) makes a new cache
            st = os.stat(p)
            digest.update(f"\n{p}\t{st.st_size}\t{st.st_mtime_ns}".encode())
        key = digest.hexdigest()
        target = folder / f"images-{self.size}x{self.channels}-{key[:16]}.npy"
        self.path = target
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(paths), self.size, self.size, self.channels))
            start = 0
            try:
                for x in _decode_dataset(paths, batch_size, self.size, self.channels):
                    block = tf.cast(tf.round(x), tf.uint8).numpy()
                    out[start:start + len(block)] = block
                    start += len(block)
                out.flush()
                del out
                os.replace(tmp, target)  # a killed run leaves no half-written cache behind
            except tf.errors.InvalidArgumentError:
                tmp.unlink(missing_ok=True)
                raise_undecodable(paths, tables)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        with open(target, "rb") as f:  # rows are read with pread: page cache, not this process's memory
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(f)
            self._offset = f.tell()
        self._fd = os.open(target, os.O_RDONLY)
        self._row_bytes = self.size * self.size * self.channels
        return shape

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the disk cache, in the order given (read in file order)."""
        out = np.empty((len(rows), self.size, self.size, self.channels), np.uint8)
        flat = out.reshape(len(rows), -1)
        for j in np.argsort(rows, kind="stable"):
            flat[j] = np.frombuffer(os.pread(self._fd, self._row_bytes, self._offset + int(rows[j]) * self._row_bytes),
                                    np.uint8)
        return out

    @staticmethod
    def nbytes(n_images: int, size: int, channels: int) -> int:
        return n_images * size * size * channels

    def rows(self, paths) -> np.ndarray:
        return np.fromiter((self.index[str(p)] for p in paths), np.int64, len(paths))

    def gather(self, rows):
        if not self.on_disk:
            return tf.cast(tf.gather(self.images, rows), tf.float32)
        images = tf.numpy_function(self.read_rows, [rows], tf.uint8)
        images.set_shape((None, self.size, self.size, self.channels))
        return tf.cast(images, tf.float32)


def raise_undecodable(paths, tables: list = ()) -> None:
    """After a failed batched decode: name the images TensorFlow cannot decode, with their CSV row when
    ``tables`` hold them, in one line."""
    from utils.datasets import DataError, undecodable

    bad = undecodable(paths)
    if not bad:
        raise DataError("an image failed to decode, but each decodes on its own; rerun with --cache_mb 0")
    path, reason = bad[0]
    where = next((w for w in (t.where(path) for t in tables) if w), None)
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise DataError(f"{where + ': ' if where else ''}column 'full_path': image cannot be decoded by TensorFlow "
                    f"({reason}): {path}{more}; fix or remove it, or pass --skip_bad_images=True to drop such rows")


def _decode_dataset(paths, batch_size: int, size: int, channels: int):
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, str))
    ds = ds.map(lambda p: load_image(p, size, channels), num_parallel_calls=PARALLEL, deterministic=True)
    return _finish(ds.batch(batch_size))


def make_dataset(paths: np.ndarray, targets: dict, batch_size: int, size: int, channels: int,
                 shuffle: bool = False, seed: int = 0, augment: bool = False, repeat_epoch: int = 0, zoom: float = 0.0,
                 low_res: float = 0.0, surround: float = 0.0, cache: ImageCache | None = None,
                 shard: tuple | None = None, drop_remainder: bool = False, flip_perms: dict | None = None):
    """A batched ``tf.data.Dataset`` of ``(images, {"<task>_prediction": rows})``.

    ``repeat_epoch`` makes the shuffle order depend on the epoch, so a resumed run sees the same order.
    With ``cache`` the images come from memory (see ``ImageCache``), otherwise from the files.
    ``shard=(n, i)`` keeps every n-th sample from the i-th (after the seeded shuffle, so that
    the workers of a distributed run share one order and read disjoint samples).
    ``flip_perms`` (task -> class permutation) says how a horizontal flip changes each task's label.
    ``zoom``, ``low_res`` and ``surround`` act with ``augment`` (``augment_batch``).
    """
    targets = {f"{t}_prediction": np.asarray(v, np.float32) for t, v in targets.items()}
    source = cache.rows(paths) if cache is not None else np.asarray(paths, str)
    ds = tf.data.Dataset.from_tensor_slices((source, targets))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed * 100003 + repeat_epoch, reshuffle_each_iteration=False)
    if shard:
        ds = ds.shard(*shard)
    if cache is not None:
        ds = ds.batch(batch_size, drop_remainder).map(lambda r, y: (cache.gather(r), y), num_parallel_calls=PARALLEL)
    else:
        ds = ds.map(lambda p, y: (load_image(p, size, channels), y), num_parallel_calls=PARALLEL,
                    deterministic=True).batch(batch_size, drop_remainder)
    if augment:
        perms = {f"{t}_prediction": p for t, p in (flip_perms or {}).items()}
        seeds = tf.data.Dataset.random(seed=seed * 7919 + repeat_epoch).batch(4)  # two stateless pairs a batch

        def augment(xy, s):
            return flip_batch(augment_batch(xy[0], s[2:], zoom, low_res, surround), xy[1], s[:2], perms)

        ds = tf.data.Dataset.zip(ds, seeds).map(augment, num_parallel_calls=PARALLEL)
    return _finish(ds)


def image_dataset(paths: np.ndarray, batch_size: int, size: int, channels: int,
                  cache: ImageCache | None = None):
    """Images only, in the given order (for predictions: pseudo labels, evaluation)."""
    if cache is None:
        return _decode_dataset(paths, batch_size, size, channels)
    ds = tf.data.Dataset.from_tensor_slices(cache.rows(paths)).batch(batch_size)
    return _finish(ds.map(cache.gather, num_parallel_calls=PARALLEL))


def true_targets(table: Table, widths: dict) -> dict:
    """Target rows from a table's own labels; tasks it does not label get zero rows.

    ``widths``: task -> target row width (the kind's ``width``: the class count, angles + 1 for degrees).
    """
    return {t: kind_of(table.info.vocab[t]).rows(table.labels[t], c) if t in table.labels
            else np.zeros((len(table), c), np.float32) for t, c in widths.items()}


def stl_arrays(table: Table, widths: dict):
    """Single-dataset training arrays: paths and true targets."""
    return table.paths, true_targets(table, widths)


def joint_arrays(tables: list, widths: dict, fills: dict | None = None):
    """Joint ("confusion") arrays: all datasets concatenated, missing tasks zero or ``fills``.

    ``fills[(dataset_index, task)]`` replaces the zero rows of a task the dataset does not label.
    Shuffling the concatenation each epoch mixes the datasets in every batch in proportion to size.
    """
    paths, parts = [], {t: [] for t in widths}
    for i, table in enumerate(tables):
        paths.append(table.paths)
        own = true_targets(table, widths)
        for t in widths:
            fill = (fills or {}).get((i, t))
            parts[t].append(own[t] if fill is None or t in table.labels else fill)
    return np.concatenate(paths), {t: np.concatenate(v) for t, v in parts.items()}


def alternating_arrays(table: Table, widths: dict, fills: dict | None = None):
    """Arrays for one alternating epoch over one dataset; missing tasks from ``fills[task]``."""
    targets = true_targets(table, widths)
    for t, rows in (fills or {}).items():
        if t not in table.labels:
            targets[t] = rows
    return table.paths, targets
