"""Adience (Eidinger et al. 2014): ``fold_{0..4}_data.txt`` + aligned faces.

Fold files are tab-separated: user_id, original_image, face_id, age, gender, x, y, dx, dy, tilt_ang,
fiducial_yaw_angle, fiducial_score. Images: ``faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>``
(the release's aligned faces; ``landmark_aligned_face.*`` is used when that is what exists).

Labels: gender f -> 0, m -> 1 (``u`` and empty are dropped). Age strings map to the 8 groups:
``(lo, hi)`` by its midpoint, a single number as that age, both through ``years_to_group`` (the
containing group, else the nearest; e.g. "(38, 42)" -> 38-43, "(27, 32)" -> 25-32, "(8, 23)" ->
15-20, "35" -> 38-43); ``None`` or anything else is dropped as a missing age. The ``fold`` column keeps
the release's subject-exclusive folds, so that subjects never cross splits.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from data.sources.common import Report, read_image, save_crop, write_csv
from utils.datasets import DataError
from utils.tasks import years_to_group

COLUMNS = ["user_id", "original_image", "face_id", "age", "gender", "x", "y", "dx", "dy", "tilt_ang",
           "fiducial_yaw_angle", "fiducial_score"]


def parse_age(text: str):
    """Age in years from Adience's strings, or None."""
    s = str(text).strip()
    m = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", s)
    if m:
        return (int(m.group(1)) + int(m.group(2))) / 2
    return float(s) if re.fullmatch(r"\d+(\.\d+)?", s) else None


def read_folds(root: Path) -> list:
    folds = sorted(root.rglob("fold_[0-9]_data.txt"))
    if not folds:
        raise DataError(f"{root}: no fold_<k>_data.txt files found")
    frames = []
    for f in folds:
        frame = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
        if list(frame.columns[:12]) != COLUMNS:
            raise DataError(f"{f}: unexpected header {list(frame.columns)[:12]}")
        frame["fold"] = int(re.search(r"fold_(\d)", f.name).group(1))
        frames.append(frame)
    return frames


def convert(root: Path, out: Path, size=None, limit=None, images: bool = True, **_) -> tuple:
    report, rows = Report("adience"), []
    faces = next((d for d in (root / "faces", root / "aligned") if d.is_dir()), root / "faces")
    for frame in read_folds(root):
        for _, r in frame.iterrows():
            if limit and len(rows) >= limit:
                break
            gender = {"f": 0, "m": 1}.get(r["gender"].strip())
            if gender is None:
                report.skip("gender unknown ('u' or empty)", r["original_image"])
                continue
            years = parse_age(r["age"])
            if years is None:
                report.skip(f"age missing or unparsable ({r['age'].strip() or 'empty'})", r["original_image"])
                continue
            row = {"gender": gender, "age": years_to_group(years), "age_text": r["age"].strip(),
                   "age_years": years, "fold": r["fold"], "subject": r["user_id"]}
            if images:
                name = f"{r['face_id']}.{r['original_image']}"
                candidates = [faces / r["user_id"] / f"{kind}.{name}"
                              for kind in ("coarse_tilt_aligned_face", "landmark_aligned_face")]
                path = next((c for c in candidates if c.exists()), candidates[0])
                img = read_image(path, report)
                if img is None:
                    continue
                row["full_path"] = save_crop(img, out, f"crops/adience/{r['user_id']}_{name}", size)
            rows.append(row)
    return write_csv(rows, out, "adience"), len(rows), report
