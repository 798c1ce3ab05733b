"""Faces per second of the demo pipeline (detection + batched prediction) on CPU, beside ``fer``.

    python benchmarks/demo.py [--repeat 10] [--detector haar]

Frames: the astronaut photograph (1 face) and a generated image with three copies of that face.
Models: a four-head mini_xception (64 px grey) and a four-head vggFace (224 px RGB), randomly
initialised (speed does not depend on the weights). ``fer`` (Haar cascade + its own emotion model,
installed with ``pip install --no-deps fer``) runs its ``detect_emotions`` on the same frames.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401


def faces_per_second(fn, frames, repeat: int) -> float:
    fn(frames[0])  # warm-up (graph tracing, cascade loading)
    faces, t0 = 0, time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            faces += fn(f)
    return faces / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--detector", default="haar", choices=("haar", "dlib"))
    p.add_argument("--min_face", type=int, default=50, help="smallest face searched (fer's default is 50)")
    a = p.parse_args(argv)

    from models import ModelSpec, build_net
    from utils.demo import FaceDetector, Predictor, face_records
    from utils.demo_samples import multi_face_image, sample_photo
    from utils.tasks import DEFAULT_VOCAB

    frames = [sample_photo(), multi_face_image(3, seed=1)[0]]
    detector = FaceDetector(a.detector, a.min_face)
    tasks = {"emotion": 7, "pose": 5, "gender": 2, "age": 8}
    results = {}
    for backbone in ("mini_xception", "vggFace"):
        spec = ModelSpec(backbone, tasks)
        predictor = Predictor(build_net(spec), list(tasks), {t: list(DEFAULT_VOCAB[t]) for t in tasks},
                              spec.input_size, spec.channels, backbone)
        results[backbone] = faces_per_second(lambda f: len(face_records(predictor, f, detector(f))), frames,
                                             a.repeat)
    try:
        from fer.fer import FER

        fer = FER(mtcnn=False, min_face_size=a.min_face)
        results["fer"] = faces_per_second(lambda f: len(fer.detect_emotions(f[:, :, ::-1].copy())), frames, a.repeat)
    except ImportError:
        results["fer"] = float("nan")
        print("fer is not installed (pip install --no-deps fer): no reference number")
    print(f"detector: {a.detector} (faces >= {a.min_face} px); frames: astronaut (1 face) + generated "
          f"(3 faces); {a.repeat} repeats")
    for name, fps in results.items():
        extra = "" if name == "fer" else f"   ratio to fer {fps / results['fer']:.2f}x"
        what = "emotion only" if name == "fer" else "emotion, pose, gender, age"
        print(f"{name:14s} {fps:7.1f} faces/s  ({what}){extra}")


if __name__ == "__main__":
    main()
