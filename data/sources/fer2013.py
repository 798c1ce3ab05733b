"""FER2013 (Goodfellow et al. 2013): ``fer2013.csv`` (emotion, pixels, Usage) or class folders.

CSV: 48x48 grey faces as space-separated pixels; Usage Training / PublicTest / PrivateTest becomes
the ``split`` column train / valid / test. Folder layout: ``<split>/<label>/*.png|jpg`` where split is
Training/PublicTest/PrivateTest (or train/test) and label a digit 0-6 or an emotion name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.sources.common import Report, read_image, save_crop, write_csv
from utils.datasets import SPLIT_ALIASES
from utils.tasks import EMOTION7

NAMES = {n: i for i, n in enumerate(EMOTION7)}


def pixels_to_image(text: str):
    values = np.array(str(text).split(), dtype=np.float64) if isinstance(text, str) else np.zeros(0)
    side = int(round(np.sqrt(len(values))))
    if side < 8 or side * side != len(values) or values.min() < 0 or values.max() > 255:
        return None
    return values.reshape(side, side).astype(np.uint8)


def convert_csv(csv: Path, out: Path, name: str, size, limit, report: Report) -> list:
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = {"emotion", "pixels"} - set(frame.columns)
    if missing:
        from utils.datasets import DataError

        raise DataError(f"{csv}: missing column(s) {sorted(missing)}")
    rows = []
    for i, r in frame.iterrows():
        if limit and len(rows) >= limit:
            break
        try:
            emotion = int(r["emotion"])
        except ValueError:
            report.skip("non-integer emotion", f"row {i}")
            continue
        if not 0 <= emotion <= 6:
            report.skip("emotion label out of range 0..6", f"row {i}: {emotion}")
            continue
        img = pixels_to_image(r["pixels"])
        if img is None:
            report.skip("corrupt pixels field", f"row {i}")
            continue
        split = SPLIT_ALIASES.get(str(r.get("Usage", "")).lower(), "")
        rel = save_crop(img, out, f"crops/{name}/{i:05d}.png", size)
        rows.append({"full_path": rel, "emotion": emotion, "split": split or "train", "source_row": i})
    return rows


def convert_folders(root: Path, out: Path, size, limit, report: Report) -> list:
    rows = []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_ALIASES.get(split_dir.name.lower())
        if split is None:
            continue
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            key = label_dir.name.lower()
            emotion = int(key) if key.isdigit() else NAMES.get(key, -1)
            if not 0 <= emotion <= 6:
                report.skip("unknown class folder", str(label_dir))
                continue
            for f in sorted(label_dir.iterdir()):
                if limit and len(rows) >= limit:
                    return rows
                img = read_image(f, report)
                if img is None:
                    continue
                rel = save_crop(img, out, f"crops/fer2013/{split}_{emotion}_{f.stem}.png", size)
                rows.append({"full_path": rel, "emotion": emotion, "split": split})
    return rows


def convert(root: Path, out: Path, size=None, limit=None, **_) -> tuple:
    report = Report("fer2013")
    csvs = sorted(root.rglob("fer2013.csv"))
    rows = (convert_csv(csvs[0], out, "fer2013", size, limit, report) if csvs
            else convert_folders(root, out, size, limit, report))
    return write_csv(rows, out, "fer2013"), len(rows), report
