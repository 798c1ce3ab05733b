"""A run's resolved configuration and its data: ``RunConfig``, the splits and the class vocabularies."""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.datasets import DataError, Table, load_table, split_indices
from utils.kinds import kind_of
from utils.pseudo_labels import PseudoConfig
from utils.tasks import TASKS

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """Resolved configuration of one training run (written to the run folder as config.json)."""

    script: str
    mode: str  # stl | joint | alternating
    datasets: list  # [[name, [tasks...]], ...] in schedule order
    model: str = "mini_xception"
    epoch: int = 64
    rounds: int | None = None  # equal budgets: one round = one pass over every dataset (overrides epoch)
    batch_size: int = 32
    lr: float | None = None
    is_augmentation: bool = False
    is_dropout: bool = False
    is_bn: bool = False
    weights_decay: float = 0.0
    is_freezing: bool = False
    no_freezing_epoch: int = 32
    frozen_lr: float = 1e-3
    loss_weights: dict = field(default_factory=dict)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    warmup_epochs: int = 1  # joint zero-fill epochs before pseudo labels / alternation start
    teacher_margin: float = 0.1  # pseudo / distilled labels of a task start once the teacher beats chance by this
    regularization: dict = field(default_factory=dict)
    weighting: str = "fixed"  # loss-weighting strategy (utils/weighting.py)
    weighting_lr: float = 0.025  # step size of the strategy's own parameters
    cross_stitch: bool = True
    bn_stats: str = "per_dataset"  # alternating runs: per_dataset | mixed | moving (engine/batchnorm.py)
    cache_mb: int = 3072  # decoded images above this many MB are cached on disk instead (disk_cache)
    disk_cache: bool = True
    plot_pseudo: bool = False  # weight histograms and t-SNE of pseudo labels per epoch
    age_kind: str = "auto"  # auto | groups | years
    pose_kind: str = "bins"  # bins (the 5 yaw classes) | degrees (angles regressed in degrees)
    age_sigma: float = 0.0  # years: Gaussian label smoothing around the true age
    age_loss: str = "auto"  # auto | ce | l1 (expected-value L1; auto = l1 for ssrnet, else ce)
    distribute: str = "none"  # none | mirrored | multiworker
    mixed_precision: bool = False
    jit: bool = False
    lr_schedule: str = "plateau"  # plateau (10x drops, --patience) | cosine (to 0 over the run, per step)
    patience: int = 5
    early_stopping_patience: int | None = None
    monitor: str = "val_loss"
    n_splits: int = 5
    fold: int = 0
    val_fraction: float = 0.1
    seed: int = 1
    data_dir: str | None = None
    output_dir: str = "runs"
    run_name: str | None = None
    weights: str = "none"
    input_size: int | None = None
    limit: int | None = None
    train_limit: int | None = None
    image_check: str = "header"
    skip_bad_images: bool = False
    verbose: int = 2

    @property
    def tasks(self) -> list:
        seen = {t for _, ts in self.datasets for t in ts}
        return [t for t in TASKS if t in seen]

    def method_name(self) -> str:
        """The method's readable name, e.g. 'MTL-SA hard q=0.5 (conf+dens+dist)': the report's row label,
        and (as ``method_tag``) part of the run folder's name. The one place methods are named."""
        from utils.missing import strategy_for

        p = self.pseudo
        kind = " (pose in degrees)" if self.pose_kind == "degrees" and "pose" in self.tasks else ""
        if self.mode == "stl":
            return f"STL ({'+'.join(t for _, ts in self.datasets for t in ts)}){kind}"
        label = strategy_for(p).label(self.mode)
        reg = [k for k, v in self.regularization.items() if v and k != "sigma"]
        if reg and p.mode == "naive" and self.mode == "joint":
            named = {("l21",): "SFSMR", ("laplacian", "trace"): "SLRM", ("laplacian", "nuclear"): "SLRM"}
            label = named.get(tuple(sorted(reg)), label + " + " + "+".join(reg))
        elif reg:
            label += " + " + "+".join(reg)
        if p.strategy_name == "mtl_sa" and self.mode == "joint":  # the paper's MTL-SA alternates
            label += " (joint)"
        if self.weighting != "fixed":
            label += f" [{self.weighting}]"
        if self.mode == "alternating" and self.bn_stats != "per_dataset":
            label += f" (BN {self.bn_stats})"
        return label + kind

    def method_tag(self) -> str:
        """``method_name`` as a folder-name slug, prefixed by the mode."""
        slug = re.sub(r"[^a-z0-9.=+]+", "-", self.method_name().lower()).strip("-")
        return f"{self.mode}-{slug}"


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
    """Number of classes and class names per task (from the datasets that label it)."""
    classes, names = {}, {}
    for (name, tasks), sp in zip(cfg.datasets, splits):
        for t in tasks:
            vocab = sp.train.info.vocab[t]
            if t in classes and classes[t] != len(vocab):
                raise DataError(f"datasets disagree on the classes of '{t}': {len(vocab)} in '{name}' "
                                f"vs {classes[t]}")
            classes[t], names[t] = len(vocab), list(vocab)
    return classes, names


def load_config(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "config.json").read_text())


def config_from_run(run_dir: str) -> RunConfig:
    """The RunConfig a run folder was started with (for ``--resume``); config.json round-trips."""
    data = load_config(run_dir)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kwargs = {k: v for k, v in data.items() if k in fields}
    kwargs["pseudo"] = PseudoConfig(**data["pseudo"])
    run = Path(run_dir).resolve()
    kwargs["output_dir"], kwargs["script"], kwargs["run_name"] = str(run.parent.parent), run.parent.name, run.name
    return RunConfig(**kwargs)


def build_cache(splits: list, spec, cfg: RunConfig):
    """Decode every image of the run once: into memory when it fits in ``cache_mb``, else into an
    ``.npy`` file under DATA_DIR/cache/ that later runs over the same images reuse (``ImageCache``)."""
    from utils.pipelines import ImageCache

    paths = {p for sp in splits for part in (sp.train, sp.valid, sp.test) for p in part.paths}
    need = ImageCache.nbytes(len(paths), spec.input_size, spec.channels)
    t0 = time.time()
    if need <= cfg.cache_mb * 2**20:
        cache = ImageCache(list(paths), spec.input_size, spec.channels)
        log.info("image cache: %d images, %.0f MB in memory, decoded in %.1fs", len(paths), need / 2**20,
                 time.time() - t0)
        return cache
    if not cfg.disk_cache:
        log.info("image cache off: %.0f MB needed, --cache_mb=%d", need / 2**20, cfg.cache_mb)
        return None
    cache = ImageCache(list(paths), spec.input_size, spec.channels,
                       disk_dir=str(Path(cfg.data_dir) / "cache"))
    log.info("image cache: %d images, %.0f MB on disk (over --cache_mb=%d), ready in %.1fs: %s", len(paths),
             need / 2**20, cfg.cache_mb, time.time() - t0, cache.path)
    return cache
