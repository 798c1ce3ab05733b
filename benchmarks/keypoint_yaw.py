"""How far is a photograph's face turned? A geometric yardstick for the pose head's answer.

    python benchmarks/keypoint_yaw.py [--image photo.jpg] [--shared ../shared/data]

BlazeFace's keypoints give a yaw index: the nose tip's horizontal offset from the eyes' midpoint, in
inter-ocular distances. On Pointing'04's level-head images (tilt 0, pan -45..+45; Gourier et al. 2004)
the index is printed per pan angle and a line pan = a x index + b is fitted; the photograph's faces
(default: the demos' astronaut) are then placed on that line, beside what the shipped model says.
The yardstick tells a model error from a borderline face: Pointing'04's "frontal" bin holds pan 0
only (|yaw| < 10), so a face turned 15 degrees is rightly "yaw +10..+60". Last, ``--faces`` real
UTKFace photographs (aligned chips, nearly all frontal by their keypoints) measure the pose head off
Pointing'04's studio: the share of faces within +-10 degrees by the yardstick that it calls frontal.
Where the AFLW2000-3D sample is present (photographs with yaw and pitch from a fitted 3D face model;
Zhu et al., CVPR 2016), both the yardstick and the pose head are read against that ground truth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401


def yaw_index(keypoints: np.ndarray) -> float:
    """Nose tip's offset from the eyes' midpoint along x, in inter-ocular distances (BlazeFace order)."""
    right_eye, left_eye, nose = keypoints[0], keypoints[1], keypoints[2]
    return float((nose[0] - (right_eye[0] + left_eye[0]) / 2) / np.linalg.norm(left_eye - right_eye))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default=None, help="a photograph (default: the demos' astronaut)")
    p.add_argument("--model", default=None, help="a .tflite or .keras model (default: the shipped one)")
    p.add_argument("--faces", type=int, default=300, help="UTKFace photographs for the off-studio check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    a = p.parse_args(argv)
    import cv2
    from consistency import on_canvas, read, reading

    from data.sources.pointing04 import NAME
    from utils.blazeface import BlazeFace
    from utils.demo import analyze, load_predictor
    from utils.demo_samples import sample_photo
    from utils.faces import make_detector

    root = Path(a.shared) / "pointing04_sample"
    if not root.is_dir():
        print(f"{root}: Pointing'04 not found (pass --shared)", file=sys.stderr)
        return 1
    if a.image is not None and not Path(a.image).is_file():
        print(f"{a.image}: no such file", file=sys.stderr)
        return 1
    blazeface, by_pan = BlazeFace("full"), {}
    for f in sorted(root.rglob("*.jpg")):
        m = NAME.match(f.stem)
        if not m or int(m.group(4)) != 0 or abs(int(m.group(5))) > 45:
            continue
        found = blazeface(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))
        if found:
            by_pan.setdefault(int(m.group(5)), []).append(yaw_index(max(found, key=lambda d: d[1])[2]))
    print("| Pointing'04 pan (tilt 0) | images | yaw index median | min | max |")
    print("|---:|---:|---:|---:|---:|")
    for pan, values in sorted(by_pan.items()):
        v = np.asarray(values)
        print(f"| {pan:+d} | {len(v)} | {np.median(v):+.3f} | {v.min():+.3f} | {v.max():+.3f} |")
    pans = np.concatenate([[pan] * len(v) for pan, v in by_pan.items()])
    slope, intercept = np.polyfit(np.concatenate(list(by_pan.values())), pans, 1)
    print(f"fit: pan = {slope:.1f} x index {intercept:+.1f} degrees")

    bgr = None if a.image is None else cv2.imread(a.image)
    if a.image is not None and bgr is None:
        print(f"{a.image}: not a readable image", file=sys.stderr)
        return 1
    rgb = sample_photo() if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    predictor, detector = load_predictor(weights=a.model), make_detector("blazeface_refine", 30)
    print(f"\n{a.image or 'the astronaut'}, model {predictor.source}")
    for image, name in ((rgb, "photo"), (np.ascontiguousarray(rgb[:, ::-1]), "mirror")):
        records = analyze(image, predictor, detector)
        for face in blazeface(image):
            x, y, w, h = face[0]
            index = yaw_index(face[2])
            rec = reading(records, face[0])  # the demo's record of this face
            said = "not found by the demo" if rec is None or "pose" not in rec else ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(rec["pose"]["probs"].items(), key=lambda kv: -kv[1])[:3])
            print(f"{name}: face at ({x:.0f}, {y:.0f}) index {index:+.3f} -> pan {slope * index + intercept:+.0f} "
                  f"degrees; the model: {said}")

    files = sorted((Path(a.shared) / "utkface_sample" / "UTKFace").glob("*.jpg"))
    picks = np.random.default_rng(a.seed).choice(len(files), min(a.faces, len(files)), replace=False)
    said = []
    for i in picks:
        image, boxes = on_canvas([read(files[i])], 200, 1)
        found, rec = blazeface(image), reading(analyze(image, predictor, detector), boxes[0])
        if found and rec is not None and abs(slope * yaw_index(max(found, key=lambda d: d[1])[2]) + intercept) < 10:
            said.append(rec["pose"]["label"])
    labels, counts = np.unique(said, return_counts=True)
    print(f"\n{len(said)} of {len(picks)} UTKFace photographs within +-10 degrees by their keypoints; the model says "
          + ", ".join(f"{k} {c / len(said):.2f}" for k, c in sorted(zip(labels, counts), key=lambda kv: -kv[1])))
    aflw2000(Path(a.shared) / "aflw2000_sample", blazeface, predictor, detector, (slope, intercept))
    return 0


def aflw2000(root: Path, blazeface, predictor, detector, fit: tuple) -> None:
    """The yardstick and the pose head against AFLW2000-3D's fitted yaw, one photograph per row."""
    import cv2

    from data.sources.aflw2000 import read_pose
    from utils.demo import analyze
    from utils.tasks import POSE5, yaw_to_pose

    mats = sorted(root.glob("image*.mat"))
    if not mats:
        print(f"\n{root}: no AFLW2000-3D sample; its ground-truth check is skipped")
        return
    from consistency import reading

    print("\n| AFLW2000-3D photograph | yaw | pitch | true bin | yardstick | the model |")
    print("|---|---:|---:|---|---:|---|")
    right = near = adjacent = yard_right = n = 0
    errors = []
    rank = {POSE5[yaw_to_pose(v)]: i for i, v in enumerate((-75, -35, 0, 35, 75))}  # bins left to right
    for mat in mats:
        pitch, yaw, _, _ = read_pose(mat)
        image = cv2.cvtColor(cv2.imread(str(mat.with_suffix(".jpg"))), cv2.COLOR_BGR2RGB)
        found = blazeface(image)
        face = max(found, key=lambda d: d[0][2] * d[0][3]) if found else None
        rec = reading(analyze(image, predictor, detector), face[0]) if face is not None else None
        truth = POSE5[yaw_to_pose(yaw)]
        if rec is None or "pose" not in rec:
            print(f"| {mat.stem} | {yaw:+.0f} | {pitch:+.0f} | {truth} | - | not found |")
            continue
        est = fit[0] * yaw_index(face[2]) + fit[1]
        said = rec["pose"]["label"]
        n, right = n + 1, right + (said == truth)
        yard_right += POSE5[yaw_to_pose(est)] == truth
        errors.append(abs(est - yaw))
        near += said != truth and min(abs(yaw - edge) for edge in (-60, -10, 10, 60)) < 5
        adjacent += abs(rank[said] - rank[truth]) == 1
        print(f"| {mat.stem} | {yaw:+.0f} | {pitch:+.0f} | {truth} | {est:+.0f} | {said} {rec['pose']['prob']:.2f} |")
    print(f"the model: {right} of {n} in the true bin, {adjacent} of the misses in a neighbouring bin ({near} of the "
          "misses within 5 degrees of a bin edge); "
          f"the yardstick: {yard_right} of {n}, median yaw error {np.median(errors):.0f} degrees")


if __name__ == "__main__":
    sys.exit(main())
