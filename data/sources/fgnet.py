"""FG-NET ageing database: ``images/SSSAaa[x].JPG`` (subject SSS, age aa) + ``points/sssaaa[x].pts``.

Faces are cropped around the 68 landmarks of the ``.pts`` file (with ``margin``; ``align`` first levels
the eyes); an image without one is cropped around the largest face the detector finds. The
``subject`` column makes splits subject-disjoint.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data.sources.common import Report, crop_box, detect_largest_face, landmark_crop, read_image, save_crop, write_csv
from utils.tasks import years_to_group

NAME = re.compile(r"^(\d{3})A(\d{2})([a-z]?)$", re.IGNORECASE)


def read_pts(path: Path):
    """Points of an IBUG-style .pts file (``{ x y ... }``), or None when unreadable."""
    try:
        text = path.read_text()
        body = text[text.index("{") + 1:text.index("}")]
        return np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()])
    except (ValueError, OSError):
        return None


def convert(root: Path, out: Path, margin=0.2, size=None, limit=None, detector="mtcnn", align=False, **_) -> tuple:
    report, rows = Report("fgnet"), []
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    points = {p.stem.lower(): p for p in root.rglob("*.pts")}
    for f in images:
        if limit and len(rows) >= limit:
            break
        m = NAME.match(f.stem)
        if not m:
            report.skip("malformed file name (expected SSSAaa.JPG)", f.name)
            continue
        img = read_image(f, report)
        if img is None:
            continue
        pts = read_pts(points[f.stem.lower()]) if f.stem.lower() in points else None
        if pts is not None:
            crop = landmark_crop(img, pts, margin, align)
        else:
            face = detect_largest_face(img, detector)
            if face is None:
                report.skip("no landmarks and no face detected", f.name)
                continue
            if align and face.landmarks is not None:
                from utils.faces import face_crop

                crop = face_crop(img, face, size or 128)
            else:
                x, y, w, h = face.box
                crop = crop_box(img, x, y, x + w, y + h, margin)
        if crop is None:
            report.skip("empty face box", f.name)
            continue
        age = int(m.group(2))
        rel = save_crop(crop, out, f"crops/fgnet/{f.stem}.jpg", size)
        rows.append({"full_path": rel, "age": years_to_group(age), "age_years": age, "subject": m.group(1)})
    return write_csv(rows, out, "fgnet"), len(rows), report
