"""Faces per second of the image demo's pipeline (detection + all heads) against the ``fer`` package.

    python benchmarks/demo.py [--rounds 7] [--frames 12] [--shared ../shared/data]

Frames are collages of four different real UTKFace faces each (120-170 px) on a 640 x 480 canvas, so
that every frame has several faces and no face repeats within a frame. Arms, run frame by frame in
alternating order within each round:

* ``ours-blazeface``: the demos' default, BlazeFace with keypoint alignment, the shipped model's
  TFLite export (emotion, pose, gender, age) in one batched call per frame, through LiteRT, with each
  head's test-time views (its config.json's ``test_views``, ``utils/views.py``);
* ``ours-flip``: the same with the mirror image as every head's only extra view (what the views cost);
* ``ours-refined``: the same with ``blazeface_refine`` (each face's keypoints read again at three
  canonical scales and averaged);
* ``fer``: ``fer.FER(mtcnn=False).detect_emotions`` (Haar cascade, scale 1.1, 5 neighbours, faces >= 50
  px; emotion only, TFLite);
* ``ours-haar``: the same cascade settings as ``fer``, box crop, the four heads;
* ``ours-mtcnn``: MTCNN with five-landmark alignment, the four heads.

Per round it prints faces/s per arm and the ratio to ``fer``, then min / median / max over rounds.
``--recall N`` also counts, on N photographs of the ExpW sample (whole photos with labelled face
boxes), the labelled faces each detector finds (a detection whose centre lies in the labelled box and
whose side is within a factor 2 of it).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401
from utils.faces import detect, make_detector  # noqa: E402


def collages(folder: Path, n_frames: int, seed: int = 0) -> list:
    """RGB frames with four different real faces each (faces are drawn without replacement)."""
    import cv2

    files = sorted(folder.glob("*.jpg"))
    if len(files) < 4 * n_frames:
        raise SystemExit(f"error: {folder} has {len(files)} images; {4 * n_frames} are needed")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), 4 * n_frames, replace=False)
    frames = []
    for i in range(n_frames):
        canvas = np.full((480, 640, 3), 170, np.uint8)
        for k in range(4):
            face = cv2.cvtColor(cv2.imread(str(files[picks[4 * i + k]])), cv2.COLOR_BGR2RGB)
            side = int(rng.integers(120, 171))
            tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
            x0, y0 = (k % 2) * 320 + (320 - side) // 2, (k // 2) * 240 + (240 - side) // 2
            canvas[y0:y0 + side, x0:x0 + side] = tile
        frames.append(canvas)
    return frames


def recall(folder: Path, n: int, detectors: dict) -> None:
    """Labelled ExpW faces found per detector on the first ``n`` photographs that have labels."""
    import cv2

    boxes = {}
    for line in (folder / "label" / "label.lst").read_text().splitlines():
        parts = line.split()
        if len(parts) == 8:
            top, left, right, bottom = map(float, parts[2:6])
            boxes.setdefault(parts[0], []).append((left, top, right, bottom))
    names = [n_ for n_ in sorted(boxes) if (folder / "origin" / n_).is_file()][:n]
    found = dict.fromkeys(detectors, 0)
    seconds = dict.fromkeys(detectors, 0.0)
    total = sum(len(boxes[n_]) for n_ in names)
    for name in names:
        rgb = cv2.cvtColor(cv2.imread(str(folder / "origin" / name)), cv2.COLOR_BGR2RGB)
        for det, fn in detectors.items():
            t0 = time.perf_counter()
            faces = detect(fn, rgb)
            seconds[det] += time.perf_counter() - t0
            for x0, y0, x1, y1 in boxes[name]:
                side = max(x1 - x0, y1 - y0)
                found[det] += any(x0 <= f.box[0] + f.box[2] / 2 <= x1 and y0 <= f.box[1] + f.box[3] / 2 <= y1
                                  and 0.5 <= max(f.box[2], f.box[3]) / side <= 2 for f in faces)
    print(f"detection recall on {len(names)} ExpW photographs ({total} labelled faces):")
    for det in detectors:
        print(f"  {det:10s} {found[det]:4d} / {total} found ({found[det] / max(total, 1):.3f}), "
              f"{1000 * seconds[det] / max(len(names), 1):.1f} ms per photo")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--frames", type=int, default=12, help="collage frames per round (4 faces each)")
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                   help="folder holding utkface_sample/UTKFace and expw_sample")
    p.add_argument("--recall", type=int, default=0, help="also measure detection recall on this many ExpW photos")
    a = p.parse_args(argv)

    from dataclasses import replace

    from utils.demo import face_records, load_predictor

    frames = collages(Path(a.shared) / "utkface_sample" / "UTKFace", a.frames)
    predictor, what = load_predictor(), "the shipped model's TFLite export"
    try:
        from fer.fer import FER
    except ImportError:
        print("error: fer is not installed (pip install --no-deps fer==25.10.3)", file=sys.stderr)
        return 1
    fer = FER(mtcnn=False, min_face_size=50)
    blaze, haar, mtcnn = make_detector("blazeface", 50), make_detector("haar", 50), make_detector("mtcnn", 50)
    refined = make_detector("blazeface_refine", 50)
    if a.recall:
        recall(Path(a.shared) / "expw_sample", a.recall, {"blazeface": blaze, "mtcnn": mtcnn, "haar": haar})
    flip_only = replace(predictor, views={})
    arms = {
        "ours-blazeface": lambda f: len(face_records(predictor, f, detect(blaze, f))),
        "ours-flip": lambda f: len(face_records(flip_only, f, detect(blaze, f))),
        "ours-refined": lambda f: len(face_records(predictor, f, detect(refined, f))),
        "fer": lambda f: len(fer.detect_emotions(f[:, :, ::-1].copy())),
        "ours-haar": lambda f: len(face_records(predictor, f, detect(haar, f))),
        "ours-mtcnn": lambda f: len(face_records(predictor, f, detect(mtcnn, f))),
    }
    for fn in arms.values():  # warm-up: tracing, cascade and interpreter loading
        fn(frames[0])
    per_round = {name: [] for name in arms}
    order = list(arms)
    for r in range(a.rounds):
        seconds, faces = dict.fromkeys(arms, 0.0), dict.fromkeys(arms, 0)
        for i, frame in enumerate(frames):
            for name in (order if (r + i) % 2 == 0 else order[::-1]):  # interleaved, alternating order
                t0 = time.perf_counter()
                faces[name] += arms[name](frame)
                seconds[name] += time.perf_counter() - t0
        for name in arms:
            per_round[name].append(faces[name] / seconds[name])
        print(f"round {r + 1}: " + "  ".join(f"{n} {per_round[n][-1]:.1f} faces/s ({faces[n]} faces)" for n in arms))
    print(f"\n{a.frames} collage frames x 4 real UTKFace faces, {a.rounds} rounds; model: {what}")
    print(f"{'arm':15s} {'faces/s min / median / max':>28s}   ratio to fer min / median / max")
    for name in arms:
        v = per_round[name]
        ratios = [x / y for x, y in zip(v, per_round["fer"])]
        print(f"{name:15s} {min(v):8.1f} / {statistics.median(v):6.1f} / {max(v):6.1f}   "
              + ("" if name == "fer" else f"{min(ratios):5.2f} / {statistics.median(ratios):5.2f} / "
                                          f"{max(ratios):5.2f}"))
    print("heads: ours = emotion, pose, gender, age; fer = emotion")
    return 0


if __name__ == "__main__":
    sys.exit(main())
