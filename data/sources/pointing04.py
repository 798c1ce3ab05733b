"""Pointing'04 head pose (Gourier et al. 2004): ``PersonNN/personNNSIII<tilt><pan>.jpg`` + ``.txt`` box.

The file name holds person, series, image index, tilt and pan in degrees (``person01146-30+45.jpg``:
tilt -30, pan +45). The ``.txt`` lists the face box as centre x, centre y, width, height after a
``Face`` line. Pan is binned into the same 5 yaw classes as AFLW (``utils.tasks.yaw_to_pose``); tilt and pan are
kept as columns and ``subject`` (the person) makes splits person-disjoint.
"""
from __future__ import annotations

import re
from pathlib import Path

from data.sources.common import Report, aligned_box_crop, crop_box, read_image, save_crop, write_csv
from utils.tasks import yaw_to_pose

NAME = re.compile(r"^person(\d{2})(\d)(\d{2})([+-]\d+)([+-]\d+)$", re.IGNORECASE)


def read_box(path: Path):
    """(x0, y0, x1, y1) from the centre/size numbers of a Pointing'04 .txt, or None."""
    try:
        nums = [float(v) for v in path.read_text().split() if re.fullmatch(r"-?\d+(\.\d+)?", v)]
    except OSError:
        return None
    if len(nums) < 4:
        return None
    cx, cy, w, h = nums[-4:]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def convert(root: Path, out: Path, margin=0.1, size=None, limit=None, align=False, detector="mtcnn", folds=0,
            **_) -> tuple:
    """``folds`` > 1: also a ``fold`` column, persons in order in ``folds`` equal groups (2: persons 01-05 fold
    0, 06-10 fold 1), so that ``--fold k`` tests on a fixed half of the persons, whatever the seed."""
    report, rows = Report("pointing04"), []
    for f in sorted(root.rglob("*.jpg")):
        if limit and len(rows) >= limit:
            break
        m = NAME.match(f.stem)
        if not m:
            report.skip("malformed file name", f.name)
            continue
        box = read_box(f.with_suffix(".txt"))
        if box is None:
            report.skip("missing or unreadable face box (.txt)", f.name)
            continue
        img = read_image(f, report)
        if img is None:
            continue
        if align:  # the demos' framing where MTCNN finds the landmarks (up to about 60 degrees of yaw)
            crop, aligned = aligned_box_crop(img, box, margin, size, detector)
            if not aligned:
                report.note("not aligned: no landmarks found in the box (box crop used)")
        else:
            crop = crop_box(img, *box, margin)
        if crop is None:
            report.skip("empty face box", f.name)
            continue
        tilt, pan = int(m.group(4)), int(m.group(5))
        rel = save_crop(crop, out, f"crops/pointing04/{f.stem}.jpg", size)
        rows.append({"full_path": rel, "pose": yaw_to_pose(pan), "pan": pan, "tilt": tilt,
                     "subject": f"person{m.group(1)}", "series": int(m.group(2))})
    if folds > 1:
        persons = sorted({r["subject"] for r in rows})
        fold_of = {p: i * folds // len(persons) for i, p in enumerate(persons)}
        for r in rows:
            r["fold"] = fold_of[r["subject"]]
    return write_csv(rows, out, "pointing04"), len(rows), report
