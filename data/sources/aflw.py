"""AFLW (Koestinger et al. 2011): ``aflw.sqlite`` + the Flickr images.

Tables used: Faces (face_id, file_id), FaceImages (file_id, filepath), FaceRect (face_id, x, y, w, h)
and FacePose (face_id, roll, pitch, yaw in radians). Each face is cropped by its FaceRect (one crop
per face), its yaw binned into the 5 pose classes (``utils.tasks.yaw_to_pose``), and yaw/pitch/roll kept in
degrees. Images are looked up under the folder holding the sqlite file and its ``flickr/`` folder.
"""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from data.sources.common import Report, crop_box, find_file, read_image, save_crop, write_csv
from utils.datasets import DataError
from utils.tasks import yaw_to_pose

QUERY = """
SELECT Faces.face_id, FaceImages.filepath, FaceRect.x, FaceRect.y, FaceRect.w, FaceRect.h,
       FacePose.roll, FacePose.pitch, FacePose.yaw
FROM Faces
JOIN FaceImages ON Faces.file_id = FaceImages.file_id
LEFT JOIN FaceRect ON Faces.face_id = FaceRect.face_id
LEFT JOIN FacePose ON Faces.face_id = FacePose.face_id
ORDER BY Faces.face_id
"""


def convert(root: Path, out: Path, margin=0.1, size=None, limit=None, **_) -> tuple:
    db = find_file(root, "aflw.sqlite")
    try:
        records = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(QUERY).fetchall()
    except sqlite3.Error as exc:
        raise DataError(f"{db}: not the AFLW database ({exc})") from None
    bases = [db.parent / "flickr", db.parent, root / "flickr", root]
    report, rows, last = Report("aflw"), [], (None, None)
    for face_id, filepath, x, y, w, h, roll, pitch, yaw in records:
        if limit and len(rows) >= limit:
            break
        if x is None or w is None:
            report.skip("no FaceRect", f"face {face_id}")
            continue
        if yaw is None:
            report.skip("no FacePose", f"face {face_id}")
            continue
        path = next((b / filepath for b in bases if (b / filepath).exists()), bases[0] / filepath)
        if last[0] != path:
            last = (path, read_image(path, report))
        elif last[1] is None:
            report.skip("missing image" if not path.exists() else "unreadable image", str(path))
        img = last[1]
        if img is None:
            continue
        crop = crop_box(img, x, y, x + w, y + h, margin)
        if crop is None:
            report.skip("empty face box", f"face {face_id}")
            continue
        deg = [math.degrees(v) for v in (yaw, pitch, roll)]
        rel = save_crop(crop, out, f"crops/aflw/{face_id}.jpg", size)
        rows.append({"full_path": rel, "pose": yaw_to_pose(deg[0]), "yaw": round(deg[0], 2),
                     "pitch": round(deg[1], 2), "roll": round(deg[2], 2), "face_id": face_id, "image": filepath})
    return write_csv(rows, out, "aflw"), len(rows), report
