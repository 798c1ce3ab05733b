"""FER+ (Barsoum et al. 2016): Microsoft's ``fer2013new.csv`` votes over the FER2013 images.

Each row has 10 vote counts: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
unknown, NF. The label is the majority vote over all 10 columns; a face whose top vote is ``unknown``
or ``NF`` (not a face), whose top emotions tie, or whose image name is empty, is dropped and counted.
Images come from FER2013's ``fer2013.csv`` (row i = ``fer{i:07d}.png``) or from a folder of the
``fer*.png`` files. Usage gives the official split (Training / PublicTest / PrivateTest).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from data.sources.common import Report, read_image, save_crop, write_csv
from data.sources.fer2013 import pixels_to_image
from utils.datasets import SPLIT_ALIASES, DataError
from utils.tasks import EMOTION_FERPLUS

VOTES = [*EMOTION_FERPLUS, "unknown", "NF"]


def majority(votes: np.ndarray) -> tuple:
    """(label index or -1, reason) for one row of 10 vote counts."""
    top = votes.max()
    winners = np.flatnonzero(votes == top)
    if top <= 0:
        return -1, "no votes"
    if winners[0] >= 8:
        return -1, "majority vote is unknown / not a face"
    if len(winners) > 1:
        return -1, "tied majority vote"
    return int(winners[0]), ""


def convert(root: Path, out: Path, size=None, limit=None, **_) -> tuple:
    report = Report("ferplus")
    labels = sorted(root.rglob("fer2013new.csv"))
    if not labels:
        raise DataError(f"{root}: fer2013new.csv not found")
    frame = pd.read_csv(labels[0], keep_default_na=False)
    missing = {"Usage", "Image name", *VOTES} - set(frame.columns)
    if missing:
        raise DataError(f"{labels[0]}: missing column(s) {sorted(missing)}")
    pixels = {}
    fer_csv = sorted(root.rglob("fer2013.csv"))
    if fer_csv:
        pixels = dict(enumerate(pd.read_csv(fer_csv[0], dtype=str, keep_default_na=False)["pixels"]))
    files = {p.name: p for p in root.rglob("fer*.png")}
    votes = frame[VOTES].apply(pd.to_numeric, errors="coerce").to_numpy()
    rows = []
    for i, r in frame.iterrows():
        if limit and len(rows) >= limit:
            break
        name = str(r["Image name"]).strip()
        if np.isnan(votes[i]).any():
            report.skip("corrupt vote counts", f"row {i}")
            continue
        if not name:
            report.skip("empty image name (not a face in FER+)", f"row {i}")
            continue
        label, reason = majority(votes[i])
        if label < 0:
            report.skip(reason, name)
            continue
        if name in files:
            img = read_image(files[name], report)
            img = None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        else:
            img = pixels_to_image(pixels[i]) if i in pixels else None
        if img is None:
            report.skip("missing image (no FER2013 pixels row or file for it)", name)
            continue
        rel = save_crop(img, out, f"crops/ferplus/{Path(name).stem}.png", size)
        rows.append({"full_path": rel, "emotion": label, "split": SPLIT_ALIASES.get(str(r["Usage"]).lower(), "train"),
                     "image_name": name})
    return write_csv(rows, out, "ferplus"), len(rows), report
