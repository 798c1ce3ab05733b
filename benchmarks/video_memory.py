"""Does processing a video to a table keep memory flat? Peak RSS of the video demo on a 1- and a 10-minute clip.

    python benchmarks/video_memory.py [--minutes 1 10] [--fps 25]

Each clip (two real-photo faces crossing a 640 x 360 frame, ``utils.demo_samples.moving_faces_video``)
is processed by a fresh ``final_video_demo.py --output none --table faces.csv`` process; the script
prints frames, table rows, wall time and the child's peak RSS, and the ratio of the longest clip's
peak to the shortest's (flat memory: about 1).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--fps", type=float, default=25.0)
    a = p.parse_args(argv)
    from utils.demo_samples import moving_faces_video

    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in a.minutes:
            clip, table = Path(tmp) / f"clip{minutes:g}.mp4", Path(tmp) / f"faces{minutes:g}.csv"
            moving_faces_video(str(clip), n_frames=int(minutes * 60 * a.fps), fps=a.fps)
            t0 = time.perf_counter()
            pid = subprocess.Popen([sys.executable, str(ROOT / "final_video_demo.py"), "--video", str(clip),
                                    "--output", "none", "--table", str(table), "--progress", "off"], cwd=tmp,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
            _, status, usage = os.wait4(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit("error: the video demo failed")
            rows = sum(1 for _ in open(table)) - 1
            peaks[minutes] = usage.ru_maxrss / 1024
            print(f"{minutes:g} min ({int(minutes * 60 * a.fps)} frames): {rows} table rows, "
                  f"{time.perf_counter() - t0:.0f} s, peak RSS {peaks[minutes]:.0f} MB", flush=True)
    lo, hi = min(a.minutes), max(a.minutes)
    print(f"peak RSS {hi:g} min / {lo:g} min: {peaks[hi] / peaks[lo]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
