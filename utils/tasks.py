"""Tasks, label vocabularies and the registries of tasks and known datasets.

A *task* is one head (emotion, pose, gender, age, race), declared once in ``TASK_SPECS`` with its
default vocabulary, its place in tables, its demo colour and its command-line names. A *dataset*
labels a subset of the tasks; which ones, with which vocabulary, and which converter of
``data/sources/`` makes it, is data in ``DATASETS`` rather than code in a script. The vocabulary also
says the task's *kind* (``utils.kinds.kind_of``): ``classes``, ``years`` (101 one-year bins) or
``degrees`` (head-pose angles regressed in degrees).
"""
from __future__ import annotations

from dataclasses import dataclass

EMOTION7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMOTION_FERPLUS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
# The 5 yaw bins of the original MTL-SA code (degrees); the names say the bin.
POSE5 = ("frontal", "yaw +10..+60", "yaw -60..-10", "yaw <= -60", "yaw >= +60")
GENDER2 = ("female", "male")
AGE_GROUPS8 = ("0-2", "4-6", "8-12", "15-20", "25-32", "38-43", "48-53", "60-100")
# Age in years as 101 bins (0..100); predictions are decoded as the softmax expected value (DEX).
AGE_YEARS = tuple(str(i) for i in range(101))
# Age in years regressed directly (one linear output), read from the same column as AGE_YEARS.
AGE_VALUE = ("years",)
# How --age_kind reads a dataset's age: vocabulary and CSV column(s)
AGE_KINDS = {"groups": (AGE_GROUPS8, None), "years": (AGE_YEARS, "age_years"), "value": (AGE_VALUE, ("age_years",))}
# Head pose as angles in degrees (regression); a dataset gives the first one, two or three of them.
ANGLES = ("yaw", "pitch", "roll")
ANGLE_VOCABS = tuple(ANGLES[:k] for k in (1, 2, 3))
# A mirrored face: yaw and roll change sign, pitch does not.
FLIP_SIGNS = {"yaw": -1.0, "pitch": 1.0, "roll": -1.0}
# Where each dataset keeps its angles (CSV column per angle), for ``--pose_kind degrees``.
ANGLE_COLUMNS = {
    "pointing04": {"yaw": "pan", "pitch": "tilt"},
    "aflw": {a: a for a in ANGLES},
    "aflw2000": {a: a for a in ANGLES},
    "toy_pose": {"yaw": "yaw"},
}
# UTKFace's race label (its file names: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others).
RACE5 = ("white", "black", "asian", "indian", "others")

# Class order after a horizontal flip (yaw changes sign): vocabularies not listed are flip-invariant.
FLIP_PERMUTATIONS = {POSE5: (0, 2, 1, 4, 3)}



@dataclass(frozen=True)
class TaskSpec:
    """A task: its default vocabulary, demo colour (RGB), loss-weight flag and STL ``--task_type`` code.
    Its place in ``TASK_SPECS`` is its order in heads, tables and drawings."""

    name: str
    vocab: tuple
    colour: tuple
    weight_flag: str
    task_type: int


TASK_SPECS = {t.name: t for t in (
    TaskSpec("emotion", EMOTION7, (255, 80, 80), "E_loss_weights", 0),
    TaskSpec("pose", POSE5, (255, 220, 0), "P_loss_weights", 5),
    TaskSpec("gender", GENDER2, (80, 220, 80), "G_loss_weights", 10),
    TaskSpec("age", AGE_GROUPS8, (90, 160, 255), "A_loss_weights", 1),
    TaskSpec("race", RACE5, (220, 130, 255), "R_loss_weights", 20),
)}
TASKS = tuple(TASK_SPECS)
DEFAULT_VOCAB = {t.name: t.vocab for t in TASK_SPECS.values()}


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset labels: task -> class names, the CSV column holding each task's labels, and the
    module of ``data/sources/`` that converts its raw release (``data/prep_data.py --dataset NAME``)."""

    name: str
    vocab: dict
    columns: dict = None
    converter: str | None = None

    @property
    def tasks(self) -> tuple:
        return tuple(t for t in TASKS if t in self.vocab)

    def column(self, task: str):
        """The CSV column of ``task``'s labels (a tuple of columns, one per angle, for degrees)."""
        return (self.columns or {}).get(task, task)


def _info(name: str, converter: str | None = None, **vocab) -> DatasetInfo:
    columns = {"age": "age_years"} if vocab.get("age") is AGE_YEARS else None
    return DatasetInfo(name, vocab, columns, converter)


DATASETS = {
    d.name: d
    for d in (
        _info("fer2013", "fer2013", emotion=EMOTION7),
        _info("ferplus", "ferplus", emotion=EMOTION_FERPLUS),
        _info("sfew", "sfew", emotion=EMOTION7),
        _info("expw", "expw", emotion=EMOTION7),
        _info("aflw", "aflw", pose=POSE5),
        _info("aflw2000", "aflw2000", pose=POSE5),
        _info("pointing04", "pointing04", pose=POSE5),
        _info("adience", "adience", gender=GENDER2, age=AGE_GROUPS8),
        _info("imdb", "imdb_wiki", gender=GENDER2, age=AGE_YEARS),
        _info("wiki", "imdb_wiki", gender=GENDER2, age=AGE_YEARS),
        _info("utkface", "utkface", gender=GENDER2, age=AGE_YEARS),
        _info("fgnet", "fgnet", age=AGE_YEARS),
        # UTKFace split into three disjoint parts that each keep one label (utk_parts converter, README)
        _info("utk_age", "utk_parts", age=AGE_YEARS),
        _info("utk_gender", "utk_parts", gender=GENDER2),
        _info("utk_race", "utk_parts", race=RACE5),
        _info("toy_emotion", emotion=EMOTION7),
        _info("toy_pose", pose=POSE5),
        _info("toy_gender_age", gender=GENDER2, age=AGE_GROUPS8),
    )
}
CONVERTERS = {name: d.converter for name, d in DATASETS.items() if d.converter}

# Spellings used by the seed command lines.
ALIASES = {"SFEW": "sfew", "AFLW": "aflw", "ExpW": "expw", "FERPlus": "ferplus", "toy": "toy_emotion"}

# STL --task_type codes of the original scripts (13: gender, as the reference's help text says).
TASK_TYPE_CODES = {**{t.task_type: t.name for t in TASK_SPECS.values()}, 13: "gender"}


def canonical_name(name: str) -> str:
    """Map a dataset name as written on a command line to its registry spelling."""
    return ALIASES.get(name, name.lower() if name.lower() in DATASETS else name)


def dataset_info(name: str, columns=None, age_kind: str = "auto", pose_kind: str = "bins") -> DatasetInfo:
    """Registry entry for ``name`` (unknown datasets are described by their label columns).

    ``age_kind`` (a key of ``AGE_KINDS``) overrides how the dataset's age is read: the 8 Adience groups
    from column ``age``, years 0..100 as 101 bins from column ``age_years``, or that column regressed
    directly (``value``). ``pose_kind`` 'degrees' reads
    head pose as angles in degrees from the dataset's ``ANGLE_COLUMNS`` instead of the 5 yaw bins.
    """
    name = canonical_name(name)
    if name in DATASETS:
        info = DATASETS[name]
    else:
        cols = set(columns) if columns is not None else set()
        info = DatasetInfo(name, {t: DEFAULT_VOCAB[t] for t in TASKS if t in cols})
    if age_kind in AGE_KINDS and "age" in info.vocab:
        vocab, column = AGE_KINDS[age_kind]
        info = DatasetInfo(name, {**info.vocab, "age": vocab}, {"age": column} if column else None)
    if pose_kind == "degrees" and "pose" in info.vocab:
        if name not in ANGLE_COLUMNS:
            raise ValueError(f"dataset '{name}' has no head-pose angles in degrees (datasets with angles: "
                             f"{', '.join(ANGLE_COLUMNS)}); use --pose_kind bins")
        angles = ANGLE_COLUMNS[name]
        info = DatasetInfo(name, {**info.vocab, "pose": tuple(angles)},
                           {**(info.columns or {}), "pose": tuple(angles.values())})
    return info


AGE_GROUP_BOUNDS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))


def years_to_group(age: float) -> int:
    """Adience group of an age in years: the group containing it, else the nearest one.

    Ages in the gaps between Adience's groups (3, 7, 13-14, 21-24, 33-37, 44-47, 54-59) go to the
    nearer group; at equal distance to the older one (e.g. 35 -> 38-43).
    """
    dist = [max(lo - age, age - hi, 0.0) for lo, hi in AGE_GROUP_BOUNDS]
    best = min(dist)
    return max(i for i, d in enumerate(dist) if d == best)


def flip_permutations(vocabularies: dict) -> dict:
    """task -> how a horizontal flip changes its target rows, for the tasks whose labels change: a class
    permutation (tuple of indices), or for angles in degrees ``("signs", per-angle signs)``."""
    out = {t: FLIP_PERMUTATIONS[tuple(v)] for t, v in vocabularies.items() if tuple(v) in FLIP_PERMUTATIONS}
    out.update({t: ("signs", tuple(FLIP_SIGNS[a] for a in v)) for t, v in vocabularies.items()
                if tuple(v) in ANGLE_VOCABS})
    return out


def unflip(outputs, perm):
    """A mirror image's outputs (N, C) mapped back to the original image: ``perm`` is the task's entry of
    ``flip_permutations`` (None: the task's labels do not change under a flip)."""
    import numpy as np

    outputs = np.asarray(outputs)
    if perm is None:
        return outputs
    return outputs * np.array(perm[1], np.float32) if perm[0] == "signs" else outputs[:, list(perm)]


def yaw_to_pose(yaw_degrees: float) -> int:
    """The 5 head-pose classes from yaw in degrees; -1 for NaN (missing).

    0: |yaw| < 10, 1: 10 <= yaw < 60, 2: -60 < yaw <= -10, 3: yaw <= -60, 4: yaw >= 60.
    """
    d = float(yaw_degrees)
    if d != d:
        return -1
    if abs(d) < 10:
        return 0
    if 10 <= d < 60:
        return 1
    if -60 < d <= -10:
        return 2
    return 3 if d <= -60 else 4
