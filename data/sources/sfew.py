"""SFEW 2.0 (Dhall et al.): ``Train/Train_Aligned_Faces/<Class>/*.png`` and ``Val/Val_Aligned_Faces/...``.

Class folders Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral map to the 7 emotion labels.
Train and Val are kept as the ``split`` column (the official test labels are not public).
"""
from __future__ import annotations

from pathlib import Path

from data.sources.common import Report, add_class_folder, write_csv
from utils.tasks import EMOTION7

CLASSES = {n: i for i, n in enumerate(EMOTION7)}


def convert(root: Path, out: Path, size=None, limit=None, **_) -> tuple:
    report, rows = Report("sfew"), []
    for split_name, split in (("train", "train"), ("val", "valid")):
        dirs = [d for d in root.rglob("*") if d.is_dir() and d.name.lower() == f"{split_name}_aligned_faces"]
        for base in dirs:
            for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                label = CLASSES.get(class_dir.name.lower())
                if label is None:
                    report.skip("unknown class folder", str(class_dir))
                    continue
                add_class_folder(rows, class_dir, label, split, "sfew", out, size, limit, report)
    return write_csv(rows, out, "sfew"), len(rows), report
