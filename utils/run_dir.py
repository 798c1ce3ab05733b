"""The self-describing run folder: config, metrics CSV, TensorBoard, confusion matrices, weights.

Layout::

    <output_dir>/<script>/<run_name>/
        config.json            resolved configuration (every flag, datasets, class names)
        metrics.csv            one row per epoch (train, validation, pseudo-label statistics)
        tensorboard/           scalars of the same rows
        confusion/             epoch_NNN_<task>.txt / .png and test_<task>.txt / .png
        best.keras last.keras  weights of the best (by the monitored value) and the last epoch
        test_metrics.json      held-out test results of the best weights

Every file is written to a temporary name and renamed, so a crash never leaves a half file.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename over ``path``."""
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def atomic_link(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of the finished file ``src`` without serialising again, then rename.

    A hard link where the file system allows it, else a byte copy; either way ``dst`` is replaced
    atomically and survives the later removal of ``src``.
    """
    import shutil

    tmp = dst.with_name(dst.stem + ".tmp" + dst.suffix)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


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
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
