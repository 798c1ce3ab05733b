"""Images/second of the tf.data pipeline vs the reference's per-image Python loader, same files.

The reference fed Keras a ``Sequence`` whose ``__getitem__`` ran ``cv2.imread`` + ``cv2.resize``
(INTER_CUBIC) + grey conversion + ``/128 - 1`` per image in Python, one batch at a time
(workers=1). Both loaders here produce the same batches (size, channels) from the same JPEG files.

    python benchmarks/pipeline.py [--n 3000] [--size 64 --channels 1] [--batch_size 32]

Prints images/second for each loader and their ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# isort: off
import utils  # noqa: E402,F401  (TensorFlow switches: must come before keras)

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
# isort: on


class ReferenceSequence(keras.utils.PyDataset):
    """The original loading scheme: one Python call per batch, one cv2 call chain per image."""

    def __init__(self, paths, batch_size, size, channels):
        super().__init__(workers=1, use_multiprocessing=False)
        self.paths, self.batch_size, self.size, self.channels = paths, batch_size, size, channels

    def __len__(self):
        return int(np.ceil(len(self.paths) / self.batch_size))

    def __getitem__(self, idx):
        batch = []
        for p in self.paths[idx * self.batch_size:(idx + 1) * self.batch_size]:
            img = cv2.resize(cv2.imread(p), (self.size, self.size), interpolation=cv2.INTER_CUBIC)
            if self.channels == 1:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None]
            batch.append(img)
        return np.asarray(batch, np.float16) / 128 - 1


def make_files(n: int, root: Path, side: int = 128) -> np.ndarray:
    """JPEG face crops like a converted dataset (synthetic faces at ``side`` px)."""
    from utils.synthetic_faces import generate

    paths = []
    for i, (img, _) in enumerate(generate("toy_emotion", n, seed=7, size=side)):
        p = root / f"{i:06d}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return np.array(paths)


def rate(iterable, n_images: int) -> float:
    t0 = time.perf_counter()
    for _ in iterable:
        pass
    return n_images / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--source_side", type=int, default=128, help="side of the JPEG files on disk")
    a = p.parse_args(argv)
    from utils.pipelines import ImageCache, make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(a.n, Path(tmp), a.source_side)
        targets = {"emotion": np.eye(7, dtype=np.float32)[np.arange(a.n) % 7]}
        # warm the OS file cache and TensorFlow's kernels once for both
        rate(ReferenceSequence(paths[:256], a.batch_size, a.size, a.channels), 256)
        rate(make_dataset(paths[:256], {"emotion": targets["emotion"][:256]}, a.batch_size, a.size, a.channels), 256)
        seq = ReferenceSequence(paths, a.batch_size, a.size, a.channels)
        ref = rate((seq[i] for i in range(len(seq))), a.n)
        tfd = rate(make_dataset(paths, targets, a.batch_size, a.size, a.channels, shuffle=True), a.n)
        aug = rate(make_dataset(paths, targets, a.batch_size, a.size, a.channels, shuffle=True, augment=True), a.n)
        t0 = time.perf_counter()
        cache = ImageCache(paths, a.size, a.channels)
        build = time.perf_counter() - t0
        cached = rate(make_dataset(paths, targets, a.batch_size, a.size, a.channels, shuffle=True, cache=cache), a.n)
    print(f"{a.n} JPEGs {a.source_side}px -> {a.size}x{a.size}x{a.channels}, batch {a.batch_size}")
    print(f"reference per-image Sequence : {ref:8.0f} images/s")
    print(f"tf.data pipeline             : {tfd:8.0f} images/s   ratio {tfd / ref:5.2f}x")
    print(f"tf.data pipeline + augment   : {aug:8.0f} images/s")
    print(f"tf.data from the image cache : {cached:8.0f} images/s   ratio {cached / ref:5.2f}x "
          f"(each epoch after a one-off decode of {build:.1f}s)")


if __name__ == "__main__":
    main()
