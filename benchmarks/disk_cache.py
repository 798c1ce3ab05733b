"""Bounded memory for big datasets: the disk-backed image cache against the in-memory one.

    python benchmarks/disk_cache.py --images 8000 --size 96 --repeats 3

Generates ``--images`` distinct JPEG faces-sized images (noise plus shapes, 128 x 128 RGB), then
measures three arms, each in a fresh process per repeat, interleaved (memory, disk, files, memory,
...): images/second over two shuffled passes of the training pipeline (``make_dataset``, batch 64,
no model) and the process's peak RSS. ``memory`` decodes everything into the in-memory cache;
``disk`` reads the ``.npy`` disk cache (built once beforehand, as a first run would; its build time
is printed); ``files`` decodes the JPEGs every pass (no cache). Prints min / median / max of each
arm and of the ratios disk / memory and files / memory.
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


def make_images(folder: Path, n: int) -> list:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = rng.integers(0, 60, (128, 128, 3), dtype=np.uint8)
        cv2.circle(img, (int(rng.integers(30, 98)), int(rng.integers(30, 98))), int(rng.integers(10, 40)),
                   tuple(int(v) for v in rng.integers(80, 255, 3)), -1)
        path = folder / f"{i:06d}.jpg"
        cv2.imwrite(str(path), img)
        paths.append(str(path))
    return paths


def arm(kind: str, list_file: str, size: int, cache_dir: str) -> dict:
    """One measurement in this (fresh) process."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import resource

    import numpy as np

    from utils.pipelines import ImageCache, make_dataset

    paths = np.asarray(Path(list_file).read_text().split("\n"))
    cache = None
    if kind == "memory":
        cache = ImageCache(paths, size, 3)
    elif kind == "disk":
        cache = ImageCache(paths, size, 3, disk_dir=cache_dir)
    targets = {"emotion": np.eye(7, dtype=np.float32)[np.arange(len(paths)) % 7]}
    t0, seen = time.perf_counter(), 0
    for epoch in range(2):
        for x, _ in make_dataset(paths, targets, 64, size, 3, shuffle=True, seed=1, repeat_epoch=epoch, cache=cache):
            seen += int(x.shape[0])
    seconds = time.perf_counter() - t0
    return {"images_per_s": seen / seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=8000)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)
    p.add_argument("--list", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cache_dir", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.arm:  # child process
        print(json.dumps(arm(a.arm, a.list, a.size, a.cache_dir)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_images(tmp / "images", a.images)
        (tmp / "list.txt").write_text("\n".join(paths))
        need = a.images * a.size * a.size * 3 / 2**20
        print(f"{a.images} images, decoded at {a.size}x{a.size}x3: {need:.0f} MB")
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}

        def child(kind):
            out = subprocess.run([sys.executable, __file__, "--arm", kind, "--list", str(tmp / "list.txt"),
                                  "--size", str(a.size), "--cache_dir", str(tmp / "cache")],
                                 capture_output=True, text=True, env=env, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        t0 = time.perf_counter()
        child("disk")  # the first run over a dataset writes the cache
        print(f"disk cache built (and read twice) in {time.perf_counter() - t0:.1f} s by a first run")
        results = {k: [] for k in ("memory", "disk", "files")}
        for _ in range(a.repeats):
            for kind in results:
                results[kind].append(child(kind))

    def stats(values):
        return f"{min(values):8.1f} {statistics.median(values):8.1f} {max(values):8.1f}"

    print(f"{'arm':8s} {'images/s min / median / max':>28s}   {'peak RSS MB min / median / max':>31s}")
    for kind, rs in results.items():
        print(f"{kind:8s} {stats([r['images_per_s'] for r in rs]):>28s}   {stats([r['peak_rss_mb'] for r in rs]):>31s}")
    for kind in ("disk", "files"):
        ratios = [r["images_per_s"] / m["images_per_s"] for r, m in zip(results[kind], results["memory"])]
        print(f"throughput {kind} / memory (same repeat): min {min(ratios):.2f}  median "
              f"{statistics.median(ratios):.2f}  max {max(ratios):.2f}")
    extra = [m["peak_rss_mb"] - d["peak_rss_mb"] for m, d in zip(results["memory"], results["disk"])]
    print(f"memory arm's peak RSS minus disk arm's: median {statistics.median(extra):.0f} MB "
          f"(the decoded images: {need:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
