"""A run's resolved configuration (``RunConfig``) and the method name it describes."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from utils.pseudo_labels import PseudoConfig
from utils.tasks import TASKS


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
    augment_zoom: float = 0.0  # with augmentation: random scale change of +- this share
    augment_low_res: float = 0.0  # with augmentation: share of images seen at a random lower resolution
    augment_surround: float = 0.0  # with augmentation: share of images given another face's surround
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
    precise_bn: bool = False  # joint epochs: BatchNorm statistics estimated on training images, not moving averages
    cache_mb: int = 3072  # decoded images above this many MB are cached on disk instead (disk_cache)
    disk_cache: bool = True
    plot_pseudo: bool = False  # weight histograms and t-SNE of pseudo labels per epoch
    age_kind: str = "auto"  # auto | groups | years
    pose_kind: str = "bins"  # bins (the 5 yaw classes) | degrees (angles regressed in degrees)
    age_sigma: float = 0.0  # years: Gaussian label smoothing around the true age
    label_smoothing: float = 0.0  # classes: true one-hot rows become (1 - eps) onehot + eps / K
    class_balance: str = "none"  # classes: weigh true rows by class frequency (none | sqrt | inverse)
    age_loss: str = "auto"  # auto | ce | l1 (expected-value L1; auto = l1 for ssrnet, else ce)
    distribute: str = "none"  # none | mirrored | multiworker
    mixed_precision: bool = False
    jit: bool = False
    lr_schedule: str = "plateau"  # plateau (10x drops, --patience) | cosine (to 0 over the run, per step)
    patience: int = 5
    early_stopping_patience: int | None = None
    keep_checkpoints: bool = False  # keep every epoch's network (weight averaging: utils/average_weights.py)
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
        kind += " (precise BN)" if self.precise_bn else ""
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
        if self.weighting != RunConfig.weighting:
            label += f" [{self.weighting}]"
        if self.mode == "alternating" and self.bn_stats != "per_dataset":
            label += f" (BN {self.bn_stats})"
        return label + kind

    def method_tag(self) -> str:
        """``method_name`` as a folder-name slug, prefixed by the mode."""
        slug = re.sub(r"[^a-z0-9.=+]+", "-", self.method_name().lower()).strip("-")
        return f"{self.mode}-{slug}"


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
