"""IMDB-WIKI (Rothe et al. 2015): ``imdb.mat`` / ``wiki.mat`` metadata + the ``imdb_crop``/``wiki_crop`` images.

Fields used: dob (MATLAB datenum), photo_taken (year), full_path, gender (0 female, 1 male, NaN),
face_score (-inf when no face), second_face_score (NaN when only one face). Age = photo_taken - birth
year. Quality filters, each a flag: one face only, face_score >= ``min_face_score``, valid gender,
0 <= age <= 100. Images of the crop release are already face crops (with margin) and are resized.
"""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import scipy.io

from data.sources.common import Report, read_image, save_crop, write_csv
from utils.datasets import DataError
from utils.tasks import years_to_group


def birth_year(datenum: float) -> int:
    """Year of a MATLAB datenum (days from year 0; Python's ordinal starts at year 1)."""
    return datetime.fromordinal(max(int(datenum) - 366, 1)).year


def load_meta(mat_path: Path, name: str) -> dict:
    try:
        meta = scipy.io.loadmat(mat_path)[name][0, 0]
    except (KeyError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{mat_path}: not an IMDB-WIKI {name}.mat ({exc})") from None
    out = {}
    for field in ("dob", "photo_taken", "full_path", "gender", "face_score", "second_face_score"):
        if field not in meta.dtype.names:
            raise DataError(f"{mat_path}: field '{field}' missing")
        out[field] = meta[field][0]
    out["full_path"] = [str(p[0]) if len(p) else "" for p in out["full_path"]]
    return out


def convert(root: Path, out: Path, size=None, limit=None, name: str = "imdb", min_face_score: float = 1.0,
            one_face: bool = True, images: bool = True, **_) -> tuple:
    mats = sorted(root.rglob(f"{name}.mat"))
    if not mats:
        raise DataError(f"{root}: {name}.mat not found")
    meta = load_meta(mats[0], name)
    image_root = mats[0].parent
    report, rows = Report(name), []
    for i, rel in enumerate(meta["full_path"]):
        if limit and len(rows) >= limit:
            break
        score, second = float(meta["face_score"][i]), float(meta["second_face_score"][i])
        gender = float(meta["gender"][i])
        if not math.isfinite(score) or score < min_face_score:
            report.skip(f"face_score below {min_face_score} (or no face)", rel)
            continue
        if one_face and not math.isnan(second):
            report.skip("second face in the photo", rel)
            continue
        if math.isnan(gender):
            report.skip("gender missing", rel)
            continue
        try:
            age = int(meta["photo_taken"][i]) - birth_year(float(meta["dob"][i]))
        except (ValueError, OverflowError):
            report.skip("invalid date of birth", rel)
            continue
        if not 0 <= age <= 100:
            report.skip("age outside 0..100", f"{rel}: {age}")
            continue
        row = {"gender": int(gender), "age": years_to_group(age), "age_years": age, "source_path": rel}
        if images:
            img = read_image(image_root / rel, report)
            if img is None:
                continue
            row["full_path"] = save_crop(img, out, f"crops/{name}/{rel.replace('/', '_')}", size)
        rows.append(row)
    return write_csv(rows, out, name), len(rows), report
