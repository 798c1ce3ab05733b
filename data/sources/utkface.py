"""UTKFace (Zhang, Song, Qi 2017): labels in file names ``age_gender_race_date.jpg[.chip.jpg]``.

UTKFace codes gender 0 = male, 1 = female; this project's convention is 0 female, 1 male, so it is
flipped. With ``--align`` each chip is aligned the demos' way (``--detector``, default MTCNN; the
demos' BlazeFace with ``--detector blazeface``): the detector looks at the chip on a replicated border
and the face is warped onto the template, so training crops are framed as the demos frame faces; a chip
without a detected face keeps its own framing (counted). Ages (0-116) map to the 8 groups (``age``) and
to years clipped to the 101-bin range (``age_years``, 0..100; the raw value stays in ``age_raw``).
Names that do not have four numeric fields (the release has a few) are reported and skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.sources.common import Report, read_image, save_crop, write_csv
from utils.tasks import years_to_group

NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)


def parse_name(name: str):
    """(age, gender in this project's convention, race) or None for a malformed name."""
    m = NAME.match(name)
    if not m:
        return None
    age, gender, race = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if gender not in (0, 1) or not 0 <= race <= 4:
        return None
    return age, 1 - gender, race


def aligned(img, size: int | None, detector: str):
    """The chip aligned onto the demos' template, or None when no face with landmarks is found."""
    import cv2

    from data.sources.common import detect_largest_face
    from utils.faces import face_crop

    pad = img.shape[0] // 4
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face = detect_largest_face(big, detector)
    if face is None or face.landmarks is None:
        return None
    rgb = cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(face_crop(rgb, face, size or img.shape[0]), cv2.COLOR_RGB2BGR)


def convert(root: Path, out: Path, size=None, limit=None, more_roots=(), align: bool = False,
            detector: str = "mtcnn", **_) -> tuple:
    """``root`` and ``more_roots``: folders of the release (e.g. its parts), read together."""
    report, rows = Report("utkface"), []
    files = sorted(p for r in (root, *more_roots) for p in r.rglob("*.jpg") if p.is_file())
    for f in files:
        if limit and len(rows) >= limit:
            break
        parsed = parse_name(f.name)
        if parsed is None:
            report.skip("malformed file name (expected age_gender_race_date.jpg)", f.name)
            continue
        age, gender, race = parsed
        img = read_image(f, report)
        if img is None:
            continue
        if align:
            face = aligned(img, size, detector)
            if face is None:
                report.note("not aligned: no face with landmarks found (the chip's own framing kept)")
            else:
                img = face
        rel = save_crop(img, out, f"crops/utkface/{f.name.split('.')[0]}.jpg", size)
        rows.append({"full_path": rel, "gender": gender, "age": years_to_group(age), "age_years": min(age, 100),
                     "age_raw": age, "race": race})
    return write_csv(rows, out, "utkface"), len(rows), report
