"""AFLW2000-3D (Zhu et al. 2016): ``imageNNNNN.jpg`` + ``.mat`` with ``Pose_Para`` and ``pt3d_68``.

``Pose_Para`` holds pitch, yaw, roll in radians, then translation and scale. Faces are cropped around
the 68 projected landmarks (``pt3d_68`` rows x, y) with ``margin`` (``align`` first levels the eyes;
leave it off for pose labels, since roll then no longer matches the image); yaw goes to the 5 pose classes and
yaw, pitch, roll are kept in degrees.
"""
from __future__ import annotations

import math
from pathlib import Path

import scipy.io

from data.sources.common import Report, landmark_crop, read_image, save_crop, write_csv
from utils.tasks import yaw_to_pose


def read_pose(mat: Path) -> tuple:
    """``(pitch, yaw, roll in degrees, 68 x 2 landmarks)`` of one ``.mat``; KeyError / ValueError /
    IndexError / OSError when it has no ``Pose_Para`` or ``pt3d_68``."""
    meta = scipy.io.loadmat(mat)
    pitch, yaw, roll = (math.degrees(float(v)) for v in meta["Pose_Para"][0][:3])
    return pitch, yaw, roll, meta["pt3d_68"][:2].T


def convert(root: Path, out: Path, margin=0.2, size=None, limit=None, align=False, **_) -> tuple:
    report, rows = Report("aflw2000"), []
    for mat in sorted(root.rglob("image*.mat")):
        if limit and len(rows) >= limit:
            break
        try:
            pitch, yaw, roll, pts = read_pose(mat)
        except (KeyError, ValueError, IndexError, OSError) as exc:
            report.skip("unreadable .mat (no Pose_Para / pt3d_68)", f"{mat.name}: {type(exc).__name__}")
            continue
        img = read_image(mat.with_suffix(".jpg"), report)
        if img is None:
            continue
        crop = landmark_crop(img, pts, margin, align)
        if crop is None:
            report.skip("empty face box", mat.name)
            continue
        rel = save_crop(crop, out, f"crops/aflw2000/{mat.stem}.jpg", size)
        rows.append({"full_path": rel, "pose": yaw_to_pose(yaw), "yaw": round(yaw, 2), "pitch": round(pitch, 2),
                     "roll": round(roll, 2)})
    return write_csv(rows, out, "aflw2000"), len(rows), report
