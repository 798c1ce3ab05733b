"""Images/second and peak memory of the input pipelines, against like-for-like baselines, same files.

    python benchmarks/pipeline.py [--n 3000] [--size 64 --channels 1] [--batch_size 32] [--repeats 3]

Arms, each in a fresh process per repeat, interleaved (every arm once, then again):

* ``reference_f16``: the original loader, a Keras ``Sequence`` whose ``__getitem__`` runs
  ``cv2.imread`` + ``cv2.resize`` (INTER_CUBIC) + grey conversion per image in Python and scales with
  numpy float16 arithmetic (``/128 - 1``), one batch at a time;
* ``reference_f32``: the same loader with float32 arithmetic (float16 numpy arithmetic is slow on
  CPUs, so this is the fair baseline for decoding from files);
* ``tfdata_files``: ``make_dataset`` decoding the JPEGs every pass;
* ``numpy_memory``: every image decoded once into a uint8 numpy array, batches gathered from it by a
  shuffled index and converted to float32 in Python (the plain in-memory baseline);
* ``tfdata_cache``: ``make_dataset`` over the in-memory ``ImageCache``.

Each arm times two passes over the files after its own one-off setup (the decode for the memory
arms, timed separately). Prints images/s and peak RSS (min / median / max over repeats) and the
like-for-like ratios tfdata_files / reference_f32 and tfdata_cache / numpy_memory.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARMS = ("reference_f16", "reference_f32", "tfdata_files", "numpy_memory", "tfdata_cache")


def reference_batches(paths, batch_size: int, size: int, channels: int, dtype):
    import cv2
    import numpy as np

    for start in range(0, len(paths), batch_size):
        batch = []
        for p in paths[start:start + batch_size]:
            img = cv2.resize(cv2.imread(p), (size, size), interpolation=cv2.INTER_CUBIC)
            if channels == 1:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None]
            batch.append(img)
        yield np.asarray(batch, dtype) / 128 - 1


def run_arm(kind: str, paths, batch_size: int, size: int, channels: int) -> dict:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import resource

    import numpy as np

    targets = {"emotion": np.eye(7, dtype=np.float32)[np.arange(len(paths)) % 7]}
    setup = 0.0
    if kind.startswith("reference"):
        dtype = np.float16 if kind.endswith("f16") else np.float32

        def passes():
            order = np.random.default_rng(0).permutation(len(paths))
            yield from reference_batches(paths[order], batch_size, size, channels, dtype)
    elif kind == "numpy_memory":
        import cv2

        t0 = time.perf_counter()
        array = np.empty((len(paths), size, size, channels), np.uint8)
        for i, p in enumerate(paths):
            img = cv2.resize(cv2.imread(p), (size, size), interpolation=cv2.INTER_AREA)
            array[i] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None] if channels == 1 else img
        setup = time.perf_counter() - t0

        def passes():
            order = np.random.default_rng(0).permutation(len(paths))
            for start in range(0, len(order), batch_size):
                yield array[np.sort(order[start:start + batch_size])].astype(np.float32)
    else:
        from utils.pipelines import ImageCache, make_dataset

        cache = None
        if kind == "tfdata_cache":
            t0 = time.perf_counter()
            cache = ImageCache(paths, size, channels)
            setup = time.perf_counter() - t0

        def passes():
            yield from make_dataset(paths, targets, batch_size, size, channels, shuffle=True, seed=0, cache=cache)
    seen, t0 = 0, time.perf_counter()
    for _ in range(2):
        for batch in passes():
            seen += len(batch[0]) if isinstance(batch, tuple) else len(batch)
    return {"images_per_s": seen / (time.perf_counter() - t0), "setup_s": setup,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def make_files(n: int, root: Path, side: int = 128) -> list:
    """JPEG face crops like a converted dataset (synthetic faces at ``side`` px)."""
    import cv2

    from utils.synthetic_faces import generate

    paths = []
    for i, (img, _) in enumerate(generate("toy_emotion", n, seed=7, size=side)):
        p = root / f"{i:06d}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--source_side", type=int, default=128, help="side of the JPEG files on disk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)
    p.add_argument("--list", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.arm:  # child process: one measurement
        import numpy as np

        paths = np.asarray(Path(a.list).read_text().split("\n"))
        print(json.dumps(run_arm(a.arm, paths, a.batch_size, a.size, a.channels)))
        return 0
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {k: [] for k in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "list.txt"
        listing.write_text("\n".join(make_files(a.n, Path(tmp), a.source_side)))
        for _ in range(a.repeats):
            for kind in ARMS:
                out = subprocess.run([sys.executable, __file__, "--arm", kind, "--list", str(listing), "--n", str(a.n),
                                      "--size", str(a.size), "--channels", str(a.channels),
                                      "--batch_size", str(a.batch_size)],
                                     capture_output=True, text=True, env=env, check=True)
                results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def mmm(values, fmt="{:8.0f}"):
        return " ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))

    print(f"{a.n} JPEGs {a.source_side}px -> {a.size}x{a.size}x{a.channels}, batch {a.batch_size}, two passes, "
          f"{a.repeats} repeats (min / median / max)")
    print(f"{'arm':14s} {'images/s':>26s} {'peak RSS MB':>26s} {'one-off setup s':>22s}")
    for kind, rs in results.items():
        print(f"{kind:14s} {mmm([r['images_per_s'] for r in rs]):>26s} {mmm([r['peak_rss_mb'] for r in rs]):>26s} "
              f"{mmm([r['setup_s'] for r in rs], '{:6.1f}'):>22s}")
    for arm, base in (("tfdata_files", "reference_f32"), ("tfdata_files", "reference_f16"),
                      ("tfdata_cache", "numpy_memory")):
        ratios = [x["images_per_s"] / y["images_per_s"] for x, y in zip(results[arm], results[base])]
        print(f"{arm} / {base} (same repeat): {mmm(ratios, '{:.2f}')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
