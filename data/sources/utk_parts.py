"""UTKFace as three disjoint single-task datasets with real hidden labels (the MTL-SA study on real faces).

UTKFace labels age, gender and race on every face, so it can be cut into three parts that each keep
one task's label (``utk_age``: age in years, ``utk_gender``, ``utk_race``: 5 classes) while the other
two labels stay in ``oracle_*`` columns: real ground truth for the pseudo labels a method puts on the
other parts' faces. Real disjoint datasets come from different populations, so the parts get a
controlled distribution shift in their race mix: each part has a home group (``HOME``: White for the
age part, Black and Indian for the gender part, Asian and Others for the race part) and a face goes to
its home part with probability ``shift``, otherwise to a part drawn uniformly (``shift`` 0 = no shift).
UTKFace publishes no identities, so faces are split by image (the same person may appear in two
parts). Each part gets a fixed ``split`` column (70 % train, 10 % valid, 20 % test, seeded by ``seed``
and never by a run's seed), so every method and every seed is tested on the same held-out images.

Input: ``<data root>/db/utkface_cleaned.csv`` from ``prep_data.py --dataset utkface`` (no ``--root``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.sources.common import Report, write_csv
from utils.datasets import DataError, load_table
from utils.tasks import RACE5

NEEDS_ROOT = False
PARTS = ("utk_age", "utk_gender", "utk_race")
LABEL = {"utk_age": "age_years", "utk_gender": "gender", "utk_race": "race"}
HOME = {"utk_age": (0,), "utk_gender": (1, 3), "utk_race": (2, 4)}  # UTKFace race codes
SPLIT = (("train", 0.7), ("valid", 0.1), ("test", 0.2))


def assign(race: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """The part index of every face: its home part with probability ``shift``, else a uniform draw."""
    home = np.array([next(i for i, p in enumerate(PARTS) if r in HOME[p]) for r in race])
    uniform = rng.integers(0, len(PARTS), len(race))
    return np.where(rng.random(len(race)) < shift, home, uniform)


def splits(n: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n)
    out = np.empty(n, object)
    start = 0
    for name, share in SPLIT:
        stop = n if name == SPLIT[-1][0] else start + int(round(share * n))
        out[order[start:stop]] = name
        start = stop
    return out


def convert(root, out: Path, shift: float = 0.5, seed: int = 0, limit=None, **_) -> tuple:
    report = Report("utk_parts")
    source = Path(out) / "db" / "utkface_cleaned.csv"
    if not source.is_file():
        raise DataError(f"{source} not found; convert UTKFace first: python data/prep_data.py --dataset utkface "
                        f"--root UTKFACE_DIR --out {out}")
    frame = pd.read_csv(source)
    missing = [c for c in ("full_path", "age_years", "gender", "race") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; re-run prep_data.py --dataset utkface")
    frame = frame.dropna(subset=["age_years", "gender", "race"]).reset_index(drop=True)
    if limit:
        frame = frame.iloc[:limit]
    rng = np.random.default_rng(seed)
    part = assign(frame["race"].to_numpy(int), shift, rng)
    written = []
    for i, name in enumerate(PARTS):
        rows = frame[part == i].reset_index(drop=True)
        label = LABEL[name]
        table = pd.DataFrame({"full_path": rows["full_path"], label: rows[label].astype(int)})
        for other in (c for c in LABEL.values() if c != label):
            table["oracle_age_years" if other == "age_years" else f"oracle_{other}"] = rows[other].astype(int)
        table["split"] = splits(len(table), rng)
        written.append(write_csv(table.to_dict("records"), Path(out), name))
        load_table(str(written[-1]))  # each part must pass the data contract
        report.lines.append(f"{written[-1]}: {len(table)} faces labelled {label} (train/valid/test "
                            + "/".join(str(int((table['split'] == s).sum())) for s, _ in SPLIT) + "), race mix "
                            + " ".join(f"{RACE5[r]} {(rows['race'] == r).mean():.2f}" for r in range(5)))
    return written[0], int(len(written[0].read_text().splitlines()) - 1), report
