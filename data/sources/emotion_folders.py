"""Any folder-per-class emotion set (CK+, JAFFE, KDEF, ...), converted under its own name.

Layouts: ``<root>/<class>/<images>`` or ``<root>/<split>/<class>/<images>`` (split Training /
PublicTest / PrivateTest / train / valid / test). Class folders named like this project's 7 emotions
(angry, disgust, fear, happy, sad, surprise, neutral, or their digits) are read as such; ``--class_map``
maps other names (``anger=angry,sadness=sad,contempt=``: an empty target drops the class). Classes that
map to nothing are dropped and counted in the summary, never guessed. The result is
``db/<--name>_cleaned.csv`` with an ``emotion`` column, so any other dataset's CSV is left alone.
"""
from __future__ import annotations

from pathlib import Path

from data.sources.common import Report, add_class_folder, write_csv
from utils.datasets import SPLIT_ALIASES, DataError
from utils.tasks import EMOTION7

NAMED_OUTPUT = True  # writes db/<--name>_cleaned.csv
IMAGES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def parse_map(text: str | None) -> dict:
    """``anger=angry,contempt=`` -> {"anger": 0, "contempt": None}; a target must be one of the 7 emotions."""
    out = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in item:
            raise DataError(f"--class_map: '{item}' is not FOLDER=EMOTION (an empty EMOTION drops the folder)")
        src, dst = (x.strip().lower() for x in item.split("=", 1))
        if dst and dst not in EMOTION7:
            raise DataError(f"--class_map: '{dst}' is not one of {', '.join(EMOTION7)}")
        out[src] = EMOTION7.index(dst) if dst else None
    return out


def label_of(folder: str, mapping: dict):
    key = folder.lower()
    if key in mapping:
        return mapping[key]
    if key.isdigit() and int(key) < len(EMOTION7):
        return int(key)
    return EMOTION7.index(key) if key in EMOTION7 else None


def convert(root: Path, out: Path, size=None, limit=None, name: str = "", class_map: str | None = None, **_) -> tuple:
    if not name:
        raise DataError("--name: the converted set needs a name of its own (db/<name>_cleaned.csv)")
    mapping, report, rows = parse_map(class_map), Report(name), []
    splits = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in SPLIT_ALIASES]
    groups = [(SPLIT_ALIASES[d.name.lower()], d) for d in splits] or [(None, root)]
    for split, folder in groups:
        for class_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
            emotion = label_of(class_dir.name, mapping)
            files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGES)
            if emotion is None:
                report.skip(f"class folder '{class_dir.name}' maps to no emotion (dropped; --class_map to map it)",
                            f"{len(files)} images")
                continue
            add_class_folder(rows, class_dir, emotion, split, name, out, size, limit, report)
    return write_csv(rows, out, name), len(rows), report
