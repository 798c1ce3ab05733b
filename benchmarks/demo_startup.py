"""The first run of the image demo as a user starts it: wall time and peak memory of the whole process.

    python benchmarks/demo_startup.py [--repeats 7]

Arms, each a fresh ``python final_image_demo.py`` process, run in alternating order:

* ``tflite``: the default, the shipped model's TFLite export through LiteRT, BlazeFace (no TensorFlow);
* ``keras``: the same model as ``--weights model.keras`` (TensorFlow is imported to run it).

Prints wall seconds and peak RSS (``ru_maxrss`` of the child) per run, then min / median / max per arm
and the ratio of medians.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.runtime import SHIPPED_MODEL  # noqa: E402  (numpy only: the parent process stays light)


def run(args: list, cwd: str) -> tuple:
    """(wall seconds, peak RSS in MB) of one child process."""
    t0 = time.perf_counter()
    pid = subprocess.Popen([sys.executable, str(ROOT / "final_image_demo.py"), *args], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: final_image_demo.py {' '.join(args)} failed")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    arms = {"tflite": [], "keras": ["--weights", str(SHIPPED_MODEL)]}
    results = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(a.repeats):
            for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
                wall, rss = run(arms[name], cwd)
                results[name].append((wall, rss))
                print(f"run {r + 1} {name:6s} {wall:6.2f} s  {rss:6.0f} MB", flush=True)
    print(f"\n{'arm':7s} wall s min / median / max      peak RSS MB min / median / max")
    for name, rows in results.items():
        w, m = [x for x, _ in rows], [y for _, y in rows]
        print(f"{name:7s} {min(w):5.2f} / {statistics.median(w):5.2f} / {max(w):5.2f}        "
              f"{min(m):5.0f} / {statistics.median(m):5.0f} / {max(m):5.0f}")
    med = {n: statistics.median(x for x, _ in rows) for n, rows in results.items()}
    print(f"keras / tflite median wall: {med['keras'] / med['tflite']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
