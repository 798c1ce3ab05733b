"""Helpers shared by the converters: skip accounting, crops, and the atomic CSV writer."""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from utils.datasets import DataError


class Report:
    """Counts rows written and rows skipped per reason; never drops anything silently."""

    def __init__(self, name: str):
        self.name, self.skipped, self.examples, self.notes = name, Counter(), {}, Counter()
        self.lines = []  # whole lines for the summary (what a converter wrote besides its main CSV)

    def note(self, what: str) -> None:
        """Count rows that were kept but handled differently (e.g. not aligned)."""
        self.notes[what] += 1

    def skip(self, reason: str, example: str = "") -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, example)

    def summary(self, written: int, csv: Path) -> str:
        lines = [f"{self.name}: wrote {written} rows to {csv}"]
        for reason, n in self.skipped.most_common():
            example = f"  (e.g. {self.examples[reason]})" if self.examples[reason] else ""
            lines.append(f"  skipped {n:6d}  {reason}{example}")
        lines += [f"  kept    {n:6d}  {what}" for what, n in self.notes.most_common()]
        return "\n".join(lines + [f"  {line}" for line in self.lines])


def crop_box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, margin: float = 0.0):
    """Crop ``[y0:y1, x0:x1]`` enlarged by ``margin`` x box size on every side, clipped to the image.

    Returns None for an empty box.
    """
    w, h = x1 - x0, y1 - y0
    if w <= 1 or h <= 1:
        return None
    x0, x1 = x0 - margin * w, x1 + margin * w
    y0, y1 = y0 - margin * h, y1 + margin * h
    H, W = img.shape[:2]
    x0, y0 = int(max(0, round(x0))), int(max(0, round(y0)))
    x1, y1 = int(min(W, round(x1))), int(min(H, round(y1)))
    if x1 - x0 <= 1 or y1 - y0 <= 1:
        return None
    return img[y0:y1, x0:x1]


def save_crop(crop: np.ndarray, out_root: Path, rel: str, size: int | None) -> str:
    """Write a crop (resized to ``size`` x ``size`` when given) under ``out_root``; returns ``rel``."""
    if size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    path = out_root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), crop):
        raise DataError(f"cannot write {path}")
    return rel


def write_csv(rows: list, out_root: Path, name: str) -> Path:
    """Write ``db/<name>_cleaned.csv`` atomically; an empty result is an error, not an empty file."""
    if not rows:
        raise DataError(f"{name}: no usable rows were found; nothing written")
    csv = out_root / "db" / f"{name}_cleaned.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv.with_suffix(".csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(csv)
    return csv


def find_file(root: Path, name: str) -> Path:
    """``root/name`` or the first ``name`` below ``root`` (releases nest their folders differently)."""
    if (root / name).exists():
        return root / name
    hits = sorted(root.rglob(Path(name).name))
    hits = [h for h in hits if str(h).endswith(name)]
    if not hits:
        raise DataError(f"{root}: {name} not found (is --root the dataset's folder?)")
    return hits[0]


def detect_largest_face(bgr: np.ndarray, detector: str = "mtcnn"):
    """The largest face (``utils.faces.Face``: box, score, five landmarks for MTCNN), or None.

    dlib's HOG detector falls back to the Haar cascade; MTCNN falls back to neither (its misses are
    mostly non-faces and profiles, which the others do not find either).
    """
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for kind in (detector, "haar") if detector == "dlib" else (detector,):
        faces = _detector(kind)(rgb)
        if faces:
            return max(faces, key=lambda f: f.box[2] * f.box[3])
    return None


def aligned_box_crop(img: np.ndarray, box, margin: float, size: int | None, detector: str = "mtcnn"):
    """Align the face inside a given box (x0, y0, x1, y1) to the template of ``utils.faces``.

    The detector looks at the box enlarged by half its size; when it finds a face with landmarks the
    crop is the similarity-aligned face (the framing the demos use), otherwise the plain box crop.
    Returns ``(crop, aligned)``.
    """
    from utils.faces import face_crop

    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = img.shape[:2]
    ox, oy = int(max(0, x0 - w / 2)), int(max(0, y0 - h / 2))
    region = img[oy:int(min(H, y1 + h / 2)), ox:int(min(W, x1 + w / 2))]
    face = detect_largest_face(region, detector) if region.size else None
    if face is None or face.landmarks is None:
        return crop_box(img, x0, y0, x1, y1, margin), False
    face.landmarks = face.landmarks + np.array([ox, oy], np.float32)
    return face_crop(img, face, size or 128), True


def eye_centres_68(points: np.ndarray) -> tuple:
    """(left, right) eye centres in image coordinates from the 68-point (iBUG) layout."""
    pts = np.asarray(points, np.float64)
    return pts[36:42].mean(0), pts[42:48].mean(0)


def landmark_crop(img: np.ndarray, points: np.ndarray, margin: float, align: bool = False):
    """Crop around 2-D landmarks (eyes levelled first with ``align`` and the 68-point layout); None if empty."""
    box = landmark_box(points)
    if box is None:
        return None
    if align and len(points) == 68:
        return align_crop(img, box, *eye_centres_68(points), margin)
    return crop_box(img, *box, margin)


def align_crop(img: np.ndarray, box, left_eye, right_eye, margin: float = 0.0):
    """Rotate the image about the eye midpoint so that the eyes are level, then crop ``box``.

    The box (x0, y0, x1, y1) keeps its size and follows its centre through the rotation.
    """
    (lx, ly), (rx, ry) = left_eye, right_eye
    angle = np.degrees(np.arctan2(ry - ly, rx - lx))
    centre = ((lx + rx) / 2.0, (ly + ry) / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle, 1.0)
    rotated = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = box
    cx, cy = m @ np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0, 1.0])
    w, h = x1 - x0, y1 - y0
    return crop_box(rotated, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, margin)


_DETECTORS = {}


def _detector(kind: str):
    from utils.faces import make_detector

    if kind not in _DETECTORS:
        _DETECTORS[kind] = make_detector(kind, min_face=20)
    return _DETECTORS[kind]


def landmark_box(points: np.ndarray):
    """Bounding box (x0, y0, x1, y1) of visible 2-D landmarks (rows = points; negatives = invisible)."""
    pts = np.asarray(points, np.float64)
    pts = pts[(pts[:, 0] >= 0) & (pts[:, 1] >= 0)]
    if len(pts) < 2:
        return None
    return pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()


ROOTS: list = []  # the --root folders of the conversion in progress (set by confine): reads stay inside


@contextmanager
def confine(roots):
    """Within, ``read_image`` reads only files whose real path lies inside one of ``roots``: a symlink or a
    ``../`` in a label file that points elsewhere is skipped and counted, never read."""
    saved = list(ROOTS)
    ROOTS[:] = [Path(r).resolve() for r in roots]
    try:
        yield
    finally:
        ROOTS[:] = saved


def inside_roots(path: Path) -> bool:
    real = Path(path).resolve()
    return not ROOTS or any(real == r or r in real.parents for r in ROOTS)


def read_image(path: Path, report: Report):
    """BGR image or None (counted as 'missing image' / 'unreadable image' / 'outside --root')."""
    if not Path(path).exists():
        report.skip("missing image", str(path))
        return None
    if not inside_roots(path):
        report.skip("outside --root (a symlink or '..' in the path points elsewhere): not read", str(path))
        return None
    img = cv2.imread(str(path))
    if img is None:
        report.skip("unreadable image", str(path))
    return img


def add_class_folder(rows: list, folder: Path, label: int, split: str | None, name: str, out: Path, size,
                     limit, report: Report, column: str = "emotion") -> None:
    """Append a row per readable image of one class folder (``<split>_<folder>_<file>.png`` crops); stops
    once ``rows`` holds ``limit`` rows. Shared by the converters of folder-per-class releases."""
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        if limit and len(rows) >= limit:
            return
        img = read_image(f, report)
        if img is None:
            continue
        rel = save_crop(img, out, f"crops/{name}/{split or 'all'}_{folder.name}_{f.stem}.png", size)
        rows.append({"full_path": rel, column: label, **({"split": split} if split else {})})
