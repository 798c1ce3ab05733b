"""The self-describing run folder: config, metrics CSV, TensorBoard, confusion matrices, weights.

Layout::

    <output_dir>/<script>/<run_name>/
        config.json            resolved configuration (every flag, datasets, class names, the code's
                               commit, a fingerprint of each train / valid / test part)
        metrics.csv            one row per epoch (train, validation, pseudo-label statistics)
        tensorboard/           scalars of the same rows
        confusion/             epoch_NNN_<task>.txt / .png and test_<task>.txt / .png
        best.keras last.keras  weights of the best (by the monitored value) and the last epoch
        test_metrics.json      held-out test results of the best weights

Every file is written to a temporary name and renamed, so a crash never leaves a half file.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def code_version() -> dict:
    """The code a run was made with: the repository's commit and whether files differed from it (None
    outside a git checkout), so that every run record names its code."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty}


class RunFolderError(Exception):
    """A run folder that cannot be used (in use, taken, disk full); one line for the user."""


@contextlib.contextmanager
def _temporary(path: Path, suffix: str = ".tmp"):
    """A unique temporary file beside ``path``, renamed over it on success and removed on failure.

    Unique names keep two processes that write the same file (two runs given one name) from
    clobbering each other's half-written temporaries; removal on failure keeps a full disk from
    staying full of partial checkpoints.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise RunFolderError(f"cannot write {path}: {exc.strerror} (errno {exc.errno}); nothing "
                                 f"partial was left behind") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with _temporary(path) as tmp:
        tmp.write_text(text)


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a unique temporary ``.keras`` file, then rename over ``path``."""
    with _temporary(path, ".tmp.keras") as tmp:
        model.save(tmp)


def atomic_link(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of the finished file ``src`` without serialising again, then rename.

    A hard link where the file system allows it, else a byte copy; either way ``dst`` is replaced
    atomically and survives the later removal of ``src``.
    """
    import shutil

    with _temporary(dst, ".tmp" + dst.suffix) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def atomic_save_npz(path: Path, arrays: dict) -> None:
    with _temporary(path, ".tmp.npz") as tmp:
        np.savez(tmp, **arrays)


def claim_run_folder(base: Path) -> Path:
    """Create a new, empty run folder at ``base`` or, when that name is taken, at ``base-2``, ``-3`` ...

    ``mkdir`` is atomic, so two runs started together with one name get two folders; an existing
    run is never appended to or overwritten.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if k > 1:
            log.warning("run folder %s exists; this run writes to %s (use --resume %s to continue that run)",
                        base, path, base)
        return path
    raise RunFolderError(f"no free run folder name next to {base}")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


class RunDir:
    """Writer for one run folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "confusion").mkdir(parents=True, exist_ok=True)
        self._writer = None
        self._lock = open(self.path / ".lock", "a+")  # held until ``release`` or the process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunFolderError(f"run folder {self.path} is in use by another running process") from None

    def release(self) -> None:
        """Let another run (a ``--resume``) use the folder: close the TensorBoard writer and the lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._lock.close()

    def write_json(self, name: str, data: dict) -> None:
        atomic_write_text(self.path / name, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")

    def append_metrics(self, row: dict) -> None:
        """Append a row to metrics.csv (rewritten whole, atomically, when new columns appear)."""
        path = self.path / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        rows.append({k: _fmt(v) for k, v in row.items()})
        _write_rows(path, list(dict.fromkeys(k for r in rows for k in r)), rows)
        self._tensorboard(row)

    def last_metrics(self) -> dict:
        """The last row of metrics.csv ({} when there is none)."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return {}
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return rows[-1] if rows else {}

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop metrics rows after ``last_epoch`` (written by an epoch that did not finish its checkpoint)."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, [r for r in reader if int(r["epoch"]) <= last_epoch]
        _write_rows(path, fields, rows)

    def _tensorboard(self, row: dict) -> None:
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))
        step = int(row.get("epoch", 0))
        with self._writer.as_default():
            for k, v in row.items():
                if isinstance(v, (int, float, np.floating)) and k != "epoch" and not math.isnan(float(v)):
                    tf.summary.scalar(k, float(v), step=step)
        self._writer.flush()

    def write_confusion(self, stem: str, matrix: np.ndarray, class_names, title: str = "") -> None:
        """``confusion/<stem>.txt`` (integer counts, labelled) and ``<stem>.png`` (row-normalised)."""
        names = [str(c) for c in class_names]
        width = max(8, *(len(n) for n in names)) + 1
        lines = ["truth \\ predicted".ljust(width) + "".join(n[:width - 1].rjust(width) for n in names)]
        for name, row in zip(names, matrix):
            lines.append(name.ljust(width) + "".join(str(int(v)).rjust(width) for v in row))
        atomic_write_text(self.path / "confusion" / f"{stem}.txt", "\n".join(lines) + "\n")
        save_confusion_png(self.path / "confusion" / f"{stem}.png", matrix, names, title or stem)


def _write_rows(path: Path, fields: list, rows: list) -> None:
    """Write a CSV through a temporary file and a rename."""
    with _temporary(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(float(v)) else f"{float(v):.6g}"
    return v


def save_confusion_png(path: Path, matrix: np.ndarray, names, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, np.float64)
    norm = np.divide(m, m.sum(1, keepdims=True), out=np.zeros_like(m), where=m.sum(1, keepdims=True) > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.6 * len(names)), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    try:
        with _temporary(path, ".tmp.png") as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
