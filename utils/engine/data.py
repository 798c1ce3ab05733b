"""A run's data: every dataset loaded, validated and split, the class vocabularies, chance-level MAEs
and the decoded-image cache."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.datasets import DataError, Table, load_table, split_indices
from utils.engine.config import RunConfig
from utils.kinds import kind_of

log = logging.getLogger(__name__)


@dataclass
class Split:
    train: Table
    valid: Table
    test: Table
    protocol: str = ""  # how the parts were made when it is not the obvious way (printed, in config.json)


def limited(table: Table, limit: int | None, seed: int) -> Table:
    """The seeded ``--limit`` subset of a dataset (all rows without a limit)."""
    return table.subset(np.random.default_rng(seed).permutation(len(table))[:limit]) if limit else table


def mae_of_train_mean(splits: list, task: str, part: str) -> float | None:
    """MAE of always predicting the training rows' mean of ``task`` on the rows of ``part`` (chance level)."""

    def labelled(tables):
        return np.concatenate([t.labels[task][kind_of(t.info.vocab[task]).labelled(t.labels[task])]
                               for t in tables if task in t.labels])

    train, truth = labelled([sp.train for sp in splits]), labelled([getattr(sp, part) for sp in splits])
    return float(np.abs(truth - train.mean(0)).mean()) if len(train) and len(truth) else None


def load_splits(cfg: RunConfig) -> list:
    """Load, validate and split every dataset of the run (fails before any model is built)."""
    splits = []
    for name, tasks in cfg.datasets:
        table = load_table(name, cfg.data_dir, tasks, cfg.image_check, cfg.age_kind, cfg.pose_kind)
        table = limited(table, cfg.limit, cfg.seed)
        if cfg.skip_bad_images:
            from utils.datasets import undecodable

            bad = {p for p, _ in undecodable(table.paths)}
            if bad:
                log.warning("%s: dropped %d rows whose image TensorFlow cannot decode (e.g. %s)",
                            name, len(bad), sorted(bad)[0])
                table = table.subset(np.flatnonzero([p not in bad for p in table.paths]))
        parts = split_indices(table, cfg.n_splits, cfg.fold, cfg.seed, cfg.val_fraction)
        train = limited(table.subset(parts["train"]), cfg.train_limit, cfg.seed)
        splits.append(Split(train, *(table.subset(parts[s]) for s in ("valid", "test")), parts.get("protocol", "")))
        if parts.get("protocol"):
            log.warning("%s: %s", name, parts["protocol"])
    return splits


def class_counts(splits: list, cfg: RunConfig) -> tuple:
    """Number of classes and class names per task (from the datasets that label it). A class that no
    training row has is named in a warning: its head learns it from nothing."""
    classes, names = {}, {}
    for (name, tasks), sp in zip(cfg.datasets, splits):
        for t in tasks:
            vocab = sp.train.info.vocab[t]
            if t in classes and classes[t] != len(vocab):
                raise DataError(f"datasets disagree on the classes of '{t}': {len(vocab)} in '{name}' "
                                f"vs {classes[t]}")
            classes[t], names[t] = len(vocab), list(vocab)
            kind = kind_of(vocab)
            if not kind.regression and kind.name == "classes":
                counts = np.bincount(sp.train.labels[t][sp.train.labels[t] >= 0], minlength=len(vocab))
                empty = [vocab[i] for i in np.flatnonzero(counts == 0)]
                if empty:
                    log.warning("%s: no training row of %s class %s; the model cannot learn %s", name, t,
                                ", ".join(empty), "it" if len(empty) == 1 else "them")
    return classes, names


def build_cache(splits: list, spec, cfg: RunConfig):
    """Decode every image of the run once: into memory when it fits in ``cache_mb``, else into an
    ``.npy`` file under DATA_DIR/cache/ that later runs over the same images reuse (``ImageCache``)."""
    from utils.pipelines import ImageCache

    paths = {p for sp in splits for part in (sp.train, sp.valid, sp.test) for p in part.paths}
    tables = [part for sp in splits for part in (sp.train, sp.valid, sp.test)]  # to name a bad image's CSV row
    need = ImageCache.nbytes(len(paths), spec.input_size, spec.channels)
    t0 = time.time()
    if need <= cfg.cache_mb * 2**20:
        cache = ImageCache(list(paths), spec.input_size, spec.channels, tables=tables)
        log.info("image cache: %d images, %.0f MB in memory, decoded in %.1fs", len(paths), need / 2**20,
                 time.time() - t0)
        return cache
    if not cfg.disk_cache:
        log.info("image cache off: %.0f MB needed, --cache_mb=%d", need / 2**20, cfg.cache_mb)
        return None
    cache = ImageCache(list(paths), spec.input_size, spec.channels, disk_dir=str(Path(cfg.data_dir) / "cache"),
                       tables=tables)
    log.info("image cache: %d images, %.0f MB on disk (over --cache_mb=%d), ready in %.1fs: %s", len(paths),
             need / 2**20, cfg.cache_mb, time.time() - t0, cache.path)
    return cache
