"""ExpW (Zhang et al. 2016): ``label/label.lst`` + whole photographs in ``origin/``.

Each label line is ``image_name face_id top left right bottom confidence expression``. Every face is
cropped to its own file (the reference keyed crops by image, so faces of one photo shared a crop).
Emotion labels: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
"""
from __future__ import annotations

from pathlib import Path

from data.sources.common import Report, aligned_box_crop, crop_box, find_file, read_image, save_crop, write_csv


def convert(root: Path, out: Path, margin: float = 0.1, size: int | None = 128, limit: int | None = None,
            align: bool = False, detector: str = "mtcnn", **_) -> tuple:
    labels = find_file(root, "label/label.lst")
    origin = next((p for p in (labels.parent.parent / "origin", labels.parent.parent / "image" / "origin",
                               root / "origin") if p.is_dir()), None)
    if origin is None:
        origin = find_file(root, "origin")
    report, rows, cache = Report("expw"), [], {}
    for line_no, line in enumerate(labels.read_text().splitlines(), start=1):
        if limit and len(rows) >= limit:
            break
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 8:
            report.skip("malformed line (expected 8 fields)", f"line {line_no}")
            continue
        name, face_id = parts[0], parts[1]
        try:
            top, left, right, bottom = (float(v) for v in parts[2:6])
            emotion = int(parts[7])
        except ValueError:
            report.skip("non-numeric box or label", f"line {line_no}")
            continue
        if not 0 <= emotion <= 6:
            report.skip("emotion label out of range 0..6", f"line {line_no}: {emotion}")
            continue
        if name not in cache:
            cache.clear()  # faces of one photo are consecutive; keep one decoded photo
            cache[name] = read_image(origin / name, report)
        img = cache[name]
        if img is None:
            continue
        if align:
            crop, aligned = aligned_box_crop(img, (left, top, right, bottom), margin, size, detector)
            if not aligned:
                report.note("not aligned: no landmarks found in the box (box crop used)")
        else:
            crop = crop_box(img, left, top, right, bottom, margin)
        if crop is None:
            report.skip("empty face box", f"line {line_no}")
            continue
        rel = save_crop(crop, out, f"crops/expw/{Path(name).stem}_{face_id}.jpg", size)
        rows.append({"full_path": rel, "emotion": emotion, "image": name, "face_id": int(face_id),
                     "box_top": top, "box_left": left, "box_right": right, "box_bottom": bottom,
                     "box_confidence": float(parts[6])})
    csv = write_csv(rows, out, "expw")
    return csv, len(rows), report
