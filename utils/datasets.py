"""The data contract: ``data/db/<name>_cleaned.csv`` files, their validation and their splits.

A cleaned CSV has a ``full_path`` column (absolute, or relative to the data root that holds ``db/``),
one integer label column per task the dataset labels (``emotion``, ``pose``, ``gender``, ``age``), an
optional ``split`` column (train / valid / test), optional ``fold`` or ``subject`` columns for
subject-disjoint splits, and optional ``oracle_<task>`` columns (hidden true labels of a task the dataset
does not label, in the task's default vocabulary; ``oracle_age_years`` for ages in years), used only to
measure pseudo-label quality: the synthetic faces and the UTKFace parts have them. Every failure is a
``DataError`` whose message names the file,
the row and the column.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from utils.tasks import AGE_YEARS, DATASETS, DEFAULT_VOCAB, TASKS, DatasetInfo, canonical_name, dataset_info

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "publictest": "valid", "test": "test", "privatetest": "test"}
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"GIF8", b"RIFF")


class DataError(Exception):
    """A problem with the user's data; its message is one line naming the culprit."""


@dataclass
class Table:
    """One dataset in memory: image paths, integer labels per task (-1 = missing) and extras."""

    name: str
    csv_path: Path
    info: DatasetInfo
    paths: np.ndarray
    labels: dict
    oracle: dict = field(default_factory=dict)  # task -> hidden true labels (-1 unknown)
    split: np.ndarray | None = None
    groups: np.ndarray | None = None
    group_kind: str | None = None  # 'fold' or 'subject' when ``groups`` is set
    oracle_vocab: dict = field(default_factory=dict)  # task -> the vocabulary of its oracle labels
    rows: np.ndarray | None = None  # each row's 0-based row number in the CSV (for messages)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def tasks(self) -> tuple:
        return tuple(self.labels)

    def subset(self, index) -> Table:
        index = np.asarray(index)
        pick = lambda d: {k: v[index] for k, v in d.items()}  # noqa: E731
        return Table(self.name, self.csv_path, self.info, self.paths[index], pick(self.labels),
                     pick(self.oracle), None if self.split is None else self.split[index],
                     None if self.groups is None else self.groups[index], self.group_kind, self.oracle_vocab,
                     None if self.rows is None else self.rows[index])

    def where(self, path: str) -> str | None:
        """``<csv>: row R (line L)`` of the row holding image ``path``, or None."""
        hits = np.flatnonzero(self.paths == str(path))
        if not len(hits):
            return None
        r = int(self.rows[hits[0]]) if self.rows is not None else int(hits[0])
        return f"{self.csv_path}: row {r} (line {r + 2})"


def default_data_dir() -> Path:
    """The data root: ``$MTL_DATA_DIR`` or ``data/`` next to this repository's scripts."""
    env = os.environ.get("MTL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def csv_path_for(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where the cleaned CSV of dataset ``name`` lives (a path ending in .csv is taken as is)."""
    if str(name).endswith(".csv"):
        return Path(name)
    root = Path(data_dir) if data_dir else default_data_dir()
    return root / "db" / f"{canonical_name(name)}_cleaned.csv"


def missing_hint(name: str) -> str:
    """How to create the cleaned CSV of dataset ``name``."""
    ds = canonical_name(Path(name).stem.replace("_cleaned", ""))
    if ds.startswith("toy"):
        return f"create it with `python data/prep_data.py --dataset {ds}`"
    if ds in DATASETS and DATASETS[ds].converter == "utk_parts":
        return "create it with `python data/prep_data.py --dataset utk_parts` (after --dataset utkface)"
    if ds in DATASETS:
        return f"create it with `python data/prep_data.py --dataset {ds} --root RAW_DIR`"
    return (f"'{ds}' is not a known dataset (known: {', '.join(DATASETS)}); pass one of those or the path of a "
            f"cleaned .csv")


def _image_root(csv_path: Path) -> Path:
    return csv_path.parent.parent if csv_path.parent.name == "db" else csv_path.parent


def _int_labels(frame: pd.DataFrame, column: str, n_classes: int, csv: Path) -> np.ndarray:
    """Integer labels of one column; empty cells are missing (-1), anything else must be in range."""
    raw = frame[column]
    if raw.isna().all():
        raise DataError(f"{csv}: column '{column}' has no labels (every cell is empty)")
    numeric = pd.to_numeric(raw, errors="coerce")
    if column == "age_years":  # ages in years may be fractional (Adience ranges): nearest year
        numeric = numeric.round()
    bad = raw.notna() & (numeric.isna() | (numeric % 1 != 0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{csv}: row {i} (line {i + 2}): column '{column}' has non-integer value "
                        f"'{raw.iloc[i]}'")
    values = numeric.fillna(-1).astype(np.int64).to_numpy()
    out = raw.notna().to_numpy() & ((values < 0) | (values >= n_classes))
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(f"{csv}: row {i} (line {i + 2}): column '{column}' value {values[i]} is out "
                        f"of range 0..{n_classes - 1} (leave the cell empty for a missing label)")
    return values


def _angle_labels(frame: pd.DataFrame, columns: tuple, csv: Path) -> np.ndarray:
    """(N, k) head-pose angles in degrees from one column per angle; empty cells are missing (NaN)."""
    out = np.full((len(frame), len(columns)), np.nan, np.float32)
    for j, column in enumerate(columns):
        raw = frame[column]
        numeric = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & (numeric.isna() | (numeric.abs() > 180))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{csv}: row {i} (line {i + 2}): column '{column}' value '{raw.iloc[i]}' is not an "
                            f"angle in degrees (-180..180)")
        out[:, j] = numeric.to_numpy(np.float32)
    if np.isnan(out).any(1).all():
        raise DataError(f"{csv}: columns {', '.join(columns)} hold no complete angle row")
    return out


def check_images(paths: np.ndarray, csv: Path, mode: str = "header") -> None:
    """Fail on the first missing or unreadable image. ``mode``: none | exists | header | decode."""
    if mode == "none":
        return
    for i, p in enumerate(paths):
        if not os.path.isfile(p):
            raise DataError(f"{csv}: row {i} (line {i + 2}): column 'full_path': image not found: {p}")
        if mode in ("header", "decode"):
            with open(p, "rb") as f:
                head = f.read(12)
            if not head.startswith(IMAGE_MAGIC):
                raise DataError(f"{csv}: row {i} (line {i + 2}): column 'full_path': not a readable "
                                f"image (unknown format or empty file): {p}")
        if mode == "decode":
            bad = undecodable([p])
            if bad:
                raise DataError(f"{csv}: row {i} (line {i + 2}): column 'full_path': image cannot "
                                f"be decoded ({bad[0][1]}): {p}")


def undecodable(paths) -> list:
    """``[(path, reason)]`` of the images TensorFlow's decoder (the one training uses) rejects.

    OpenCV and PIL accept truncated JPEGs that ``tf.io.decode_image`` refuses mid-epoch, so this is
    the check that matters; it is run on demand (``--image_check decode``) and whenever a batched
    decode fails, to name the file.
    """
    import tensorflow as tf

    bad = []
    for p in paths:
        try:
            tf.io.decode_image(tf.io.read_file(str(p)), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
            bad.append((str(p), decoder_reason(exc.message)))
    return bad


def decoder_reason(message: str) -> str:
    """TensorFlow's decode error as a short phrase: its first line, without node names and internals."""
    import re

    text = message.strip().splitlines()[0] if message.strip() else "unknown error"
    text = re.split(r"\s*(?:\[\[|\{\{|; In\b| In\[)", text)[0].strip(" .;:")
    if len(text) > 100:
        text = text[:100].rsplit(" ", 1)[0] + " ..."
    return text or "unknown error"


def load_table(name: str, data_dir=None, tasks=None, image_check: str = "header", age_kind: str = "auto",
               pose_kind: str = "bins") -> Table:
    """Read and validate the cleaned CSV of ``name`` (a dataset name or a .csv path).

    ``tasks``: the tasks the caller needs from this dataset; each must have a label column.
    ``age_kind``: auto (the dataset's own), groups or years; ``pose_kind``: bins or degrees (see
    ``utils.tasks.dataset_info``). Class labels are integer arrays (-1 = missing), angles (N, k)
    float arrays in degrees (NaN = missing).
    """
    csv = csv_path_for(name, data_dir)
    if not csv.is_file():
        ds = canonical_name(Path(name).stem.replace("_cleaned", ""))
        raise DataError(f"dataset '{ds}': {csv} not found; {missing_hint(ds)}")
    try:
        frame = pd.read_csv(csv)
    except Exception as exc:  # pandas raises many types for malformed files
        detail = " ".join(str(exc).split())
        raise DataError(f"{csv}: cannot be parsed as CSV ({detail})") from None
    if "full_path" not in frame.columns:
        raise DataError(f"{csv}: missing column 'full_path' (columns: {', '.join(frame.columns)})")
    try:
        info = dataset_info(csv.stem.replace("_cleaned", ""), frame.columns, age_kind, pose_kind)
    except ValueError as exc:
        raise DataError(f"{csv}: {exc}") from None
    wanted = tuple(tasks) if tasks else info.tasks
    for t in wanted:
        cols = info.column(t)
        for col in (cols if isinstance(cols, tuple) else (cols,)):
            if col not in frame.columns:
                hint = ("; re-run data/prep_data.py to write it" if isinstance(cols, tuple) else
                        f" (dataset '{info.name}' labels: {', '.join(info.tasks) or 'nothing'})")
                raise DataError(f"{csv}: missing label column '{col}'{hint}")
    if len(frame) == 0:
        raise DataError(f"{csv}: has no rows")
    dup = frame["full_path"].astype(str).duplicated()
    if dup.any():  # a face listed twice could land in train and test: keep its first row
        first = int(np.flatnonzero(dup.to_numpy())[0])
        log.warning("%s: removed %d rows whose image path repeats an earlier row (first: row %d, %s)",
                    csv.name, int(dup.sum()), first, frame["full_path"].iloc[first])
        frame = frame[~dup.to_numpy()]
    source_rows = frame.index.to_numpy()
    frame = frame.reset_index(drop=True)
    vocab = {t: info.vocab.get(t) or dataset_info("", [t]).vocab[t] for t in wanted}
    labels = {t: _angle_labels(frame, info.column(t), csv) if isinstance(info.column(t), tuple)
              else _int_labels(frame, info.column(t), len(vocab[t]), csv) for t in wanted}
    oracle_vocab = {t: AGE_YEARS if f"oracle_{t}_years" in frame.columns else DEFAULT_VOCAB[t] for t in TASKS
                    if f"oracle_{t}" in frame.columns or f"oracle_{t}_years" in frame.columns}
    oracle = {t: _int_labels(frame, f"oracle_{t}_years" if v is AGE_YEARS else f"oracle_{t}", len(v), csv)
              for t, v in oracle_vocab.items()}
    root = _image_root(csv)
    paths = np.array([p if os.path.isabs(p) else str(root / p) for p in frame["full_path"].astype(str)])
    check_images(paths, csv, image_check)
    split = None
    if "split" in frame.columns:
        raw = frame["split"].astype(str).str.lower().str.replace(" ", "")
        unknown = ~raw.isin(SPLIT_ALIASES)
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"{csv}: row {i} (line {i + 2}): column 'split' value "
                            f"{frame['split'].iloc[i]!r} is not train/valid/test")
        split = raw.map(SPLIT_ALIASES).to_numpy()
    groups = None
    for col in ("fold", "subject"):
        if col in frame.columns:
            groups = (col, frame[col].astype(str).to_numpy())
            break
    return Table(info.name, csv, DatasetInfo(info.name, vocab, info.columns), paths, labels, oracle, split,
                 *(groups[::-1] if groups else (None, None)), oracle_vocab, source_rows)


def parts_digest(paths) -> str:
    """A short fingerprint of a part's images (their file names, order-free): a run records one per part
    so that an evaluation can tell when a re-conversion rebuilt different parts from the same seed."""
    import hashlib

    names = sorted(os.path.basename(str(p)) for p in paths)
    return hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]


def split_indices(table: Table, n_splits: int = 5, fold: int = 0, seed: int = 1,
                  val_fraction: float = 0.1) -> dict:
    """Train / valid / test row indices.

    Priority: the official ``split`` column; else a ``fold`` column (test = rows of fold ``fold``);
    else a ``subject`` column (subject-disjoint k-fold); else a seeded shuffled k-fold. A validation
    part is carved from train when the data has none, so that test rows never select a checkpoint.
    """
    n = len(table)
    rng = np.random.default_rng(seed)
    if table.split is not None:
        parts = {s: np.flatnonzero(table.split == s) for s in ("train", "valid", "test")}
    else:
        from sklearn.model_selection import GroupKFold, KFold

        if n < n_splits:
            raise DataError(f"{table.csv_path}: {n} rows are too few for {n_splits}-fold splitting")
        kind = table.group_kind
        if kind == "fold":
            folds = sorted(set(table.groups))
            test_mask = table.groups == folds[fold % len(folds)]
            parts = {"train": np.flatnonzero(~test_mask), "test": np.flatnonzero(test_mask)}
        else:
            if kind == "subject" and len(set(table.groups)) >= n_splits:
                # Shuffle subjects with the seed so that folds are random but subject-disjoint.
                uniq = np.array(sorted(set(table.groups)))
                perm = dict(zip(uniq, rng.permutation(len(uniq))))
                splitter = GroupKFold(n_splits=n_splits).split(
                    np.zeros(n), groups=[perm[g] for g in table.groups])
            else:
                splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n))
            train, test = list(splitter)[fold]
            parts = {"train": train, "test": test}
        parts["valid"] = np.array([], dtype=np.int64)
    if table.split is not None and len(parts["test"]) == 0:
        if len(parts["valid"]):
            # A release without a public test part (SFEW; FER2013 without PrivateTest): its official
            # validation rows become the test part and never select checkpoints; validation is carved
            # from train below.
            parts["test"], parts["valid"] = parts["valid"], np.array([], dtype=np.int64)
            parts["protocol"] = "official 'valid' rows are the test part; validation carved from train"
        else:
            train = rng.permutation(parts["train"])
            n_test = max(1, int(round(len(train) / max(n_splits, 2))))
            parts["test"], parts["train"] = np.sort(train[:n_test]), np.sort(train[n_test:])
            parts["protocol"] = f"no test rows: a seeded 1/{max(n_splits, 2)} of train is the test part"
    if len(parts.get("valid", [])) == 0 and val_fraction > 0:
        train = rng.permutation(parts["train"])
        n_val = max(1, int(round(len(train) * val_fraction)))
        parts["valid"], parts["train"] = np.sort(train[:n_val]), np.sort(train[n_val:])
    # Only with --val_fraction 0 do the test rows select checkpoints (the reference's protocol).
    if len(parts["valid"]) == 0:
        parts["valid"] = parts["test"]
        parts["protocol"] = "--val_fraction 0: the test rows also select checkpoints"
    for s in ("train", "valid", "test"):
        if len(parts[s]) == 0:
            raise DataError(f"{table.csv_path}: the '{s}' split is empty")
    return parts
