"""The same face, the same answer: does what surrounds a face change what the demos say about it?

    python benchmarks/consistency.py [--faces 300] [--detector blazeface] [--shared ../shared/data]

Real UTKFace faces (aligned 200 x 200 chips, drawn without replacement) are run through the demos'
pipeline (detector, alignment, the shipped model) alone, each chip as its own photograph on a plain
border, and again pasted into 2 x 2 and 3 x 3 collages of other UTKFace faces and at three sizes (80,
120 and 200 px) on a plain canvas. For every appearance the detection whose centre lies on the pasted
face is read and compared with the face's reading alone: gender agreement and the share of ages within
3 years (goal: at least 95 % and 90 %), and emotion agreement. Faces the detector misses in a setting
are counted apart.
Last, the causes (no test-time flip here: one forward pass per crop). Scale: for each face at 200 and
at 120 px, the change of the predicted age when each size uses its own keypoints, and when the 120 px
image is cropped with the 200 px keypoints mapped onto it. Surroundings: in a 2 x 2 collage at 200 px,
the share of ages within 3 years of the face alone with the collage's own keypoints, with the alone
keypoints mapped onto the collage (only the surroundings differ), and with the collage's keypoints
mapped back onto the face alone (only the keypoints differ), and how far the collage's keypoints lie
from the alone ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401


def read(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def on_canvas(tiles: list, side: int, grid: int, border: int = 40, colour: int = 180) -> tuple:
    """Tiles of ``side`` px on a grid x grid canvas with a ``border``; returns (image, boxes)."""
    import cv2

    size = grid * side + 2 * border
    canvas = np.full((size, size, 3), colour, np.uint8)
    boxes = []
    for k, tile in enumerate(tiles):
        r, c = divmod(k, grid)
        x, y = border + c * side, border + r * side
        canvas[y:y + side, x:x + side] = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA)
        boxes.append((x, y, side, side))
    return canvas, boxes


def reading(records: list, box) -> dict | None:
    """The record whose box centre lies inside ``box`` (the pasted face), if any."""
    x, y, w, h = box
    for rec in records:
        bx, by, bw, bh = rec["box"]
        if x <= bx + bw / 2 <= x + w and y <= by + bh / 2 <= y + h:
            return rec
    return None


def in_collage(face, fillers: list, grid: int, side: int, rng) -> tuple:
    """``face`` at a random slot of a grid x grid collage of ``fillers``; returns (image, the face's box)."""
    slot = int(rng.integers(grid * grid))
    others = [fillers[int(j)] for j in rng.choice(len(fillers), grid * grid - 1, replace=False)]
    image, boxes = on_canvas(others[:slot] + [face] + others[slot:], side, grid)
    return image, boxes[slot]


def age_of(predictor, rgb: np.ndarray, face) -> float:
    """The age one ``Face`` (box and keypoints as given) gets in ``rgb``."""
    from utils.demo import face_records

    return face_records(predictor, rgb, [face])[0]["age"]["years"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", type=int, default=300)
    p.add_argument("--detector", default="blazeface")
    p.add_argument("--model", default=None, help="a .tflite or .keras model (default: the shipped one)")
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from utils.demo import analyze, load_predictor
    from utils.faces import make_detector

    files = sorted((Path(a.shared) / "utkface_sample" / "UTKFace").glob("*.jpg"))
    rng = np.random.default_rng(a.seed)
    picks = [files[i] for i in rng.choice(len(files), a.faces + 8, replace=False)]
    faces, fillers = [read(f) for f in picks[:a.faces]], [read(f) for f in picks[a.faces:]]
    predictor = load_predictor(weights=a.model)
    detector = make_detector(a.detector, 30)

    def answer(image, box):
        rec = reading(analyze(image, predictor, detector), box)
        return None if rec is None else (rec["gender"]["label"], rec["age"]["years"], rec["emotion"]["label"])

    alone = []
    for f in faces:
        image, boxes = on_canvas([f], 200, 1)
        alone.append(answer(image, boxes[0]))
    settings = {"2x2 collage": (2, 200), "3x3 collage": (3, 120), "alone at 80 px": (1, 80),
                "alone at 120 px": (1, 120)}
    print(f"{a.faces} UTKFace faces, detector {a.detector}, model {predictor.source}")
    print(f"alone (200 px, the reference): found {sum(r is not None for r in alone)} of {a.faces}")
    print("| setting | found | gender agrees | age within 3 years | mean age change (years) | emotion agrees |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (grid, side) in settings.items():
        agree, near, shift, found, pairs, same_emotion = 0, 0, [], 0, 0, 0
        for i, face in enumerate(faces):
            if alone[i] is None:
                continue
            got = answer(*in_collage(face, fillers, grid, side, rng))
            pairs += 1
            if got is None:
                continue
            found += 1
            agree += got[0] == alone[i][0]
            near += abs(got[1] - alone[i][1]) <= 3
            same_emotion += got[2] == alone[i][2]
            shift.append(abs(got[1] - alone[i][1]))
        print(f"| {name} | {found} / {pairs} | {agree / max(found, 1):.3f} | {near / max(found, 1):.3f} | "
              f"{np.mean(shift) if shift else float('nan'):.2f} | {same_emotion / max(found, 1):.3f} |")
    predictor.flip = False  # the causes: one forward pass per crop
    cause(faces, predictor, detector)
    collage_cause(faces, fillers, predictor, detector, rng)
    return 0


def cause(faces: list, predictor, detector) -> None:
    """Keypoints or resize path? The same face at 200 and 120 px, read with its own or with shared keypoints."""
    from utils.faces import Face, detect

    own, shared = [], []
    for face in faces:
        big, _ = on_canvas([face], 200, 1)
        small, _ = on_canvas([face], 120, 1)
        a, b = detect(detector, big), detect(detector, small)
        if not a or not b:
            continue
        mapped = (a[0].landmarks - 40) * (120 / 200) + 40  # the canvases' 40 px border
        reference = age_of(predictor, big, a[0])
        own.append(abs(age_of(predictor, small, b[0]) - reference))
        shared.append(abs(age_of(predictor, small, Face(b[0].box, b[0].score, mapped.astype(np.float32))) - reference))
    print(f"cause, {len(own)} faces at 200 and 120 px: mean age change {np.mean(own):.2f} years with each size's "
          f"own keypoints, {np.mean(shared):.2f} with the 200 px keypoints mapped onto the 120 px image")


def collage_cause(faces: list, fillers: list, predictor, detector, rng) -> None:
    """Surroundings or keypoints? Each face in a 2 x 2 collage read with its own, the alone image's and (on the
    alone image) the collage's keypoints; ages within 3 years of the face alone."""
    from utils.faces import Face, detect

    def age(rgb, box, points):
        return age_of(predictor, rgb, Face(box, 1.0, points.astype(np.float32)))

    near = np.zeros(3)
    n, moved, eyes = 0, [], []
    for face in faces:
        alone, (tile,) = on_canvas([face], 200, 1)
        collage, box = in_collage(face, fillers, 2, 200, rng)
        a = reading([{"box": f.box, "face": f} for f in detect(detector, alone)], tile)
        c = reading([{"box": f.box, "face": f} for f in detect(detector, collage)], box)
        if a is None or c is None:
            continue
        a, c = a["face"], c["face"]
        shift = np.array(box[:2], np.float32) - np.array(tile[:2], np.float32)  # same size: a translation
        reference = age(alone, a.box, a.landmarks)
        ages = (age(collage, c.box, c.landmarks), age(collage, c.box, a.landmarks + shift),
                age(alone, a.box, c.landmarks - shift))
        near += np.abs(np.array(ages) - reference) <= 3
        n += 1
        moved.append(np.linalg.norm(c.landmarks - (a.landmarks + shift), axis=1).mean())
        eyes.append(np.linalg.norm(a.landmarks[0] - a.landmarks[1]))
    own, surroundings, keypoints = near / max(n, 1)
    print(f"collage cause, {n} faces in 2 x 2 collages at 200 px: age within 3 years of the face alone {own:.3f} "
          f"with the collage's keypoints, {surroundings:.3f} with the alone keypoints (only the surroundings "
          f"differ), {keypoints:.3f} with the collage's keypoints on the face alone (only the keypoints differ)")
    if moved:
        print(f"keypoint shift, the same faces: the collage's keypoints lie a median {np.median(moved):.1f} px "
              f"(90th percentile {np.percentile(moved, 90):.1f} px) from the alone ones, with a median "
              f"{np.median(eyes):.0f} px between the eyes")


if __name__ == "__main__":
    sys.exit(main())
