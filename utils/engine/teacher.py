"""The teacher: a frozen copy of the model that fills the tasks a dataset does not label.

Before each epoch that needs them, the model is copied (own variables, so the epoch's updates do
not move it) and its predictions on the unlabelled rows become distilled or pseudo targets
(``utils.pseudo_labels``). A task's teacher is used only once it beats chance on that task's
validation rows by ``--teacher_margin`` (balanced accuracy above 1/K; for ages in years, an MAE that
much below predicting the training mean, as a fraction): copying a model at chance teaches
noise (after one warm-up epoch on the synthetic preset, pose pseudo labels were 21 % right).
Until then the task's missing rows stay masked, as in All-in-one.
"""
from __future__ import annotations

import logging

import numpy as np

from utils.datasets import Table
from utils.engine.batchnorm import dataset_stats
from utils.pseudo_labels import angle_targets, build_targets
from utils.tasks import FLIP_SIGNS

log = logging.getLogger(__name__)

LABELLED_SAMPLE = 2048  # labelled rows per dataset whose features describe the labelled distribution
PREDICT_BATCH = 256


class Teacher:
    def __init__(self, trainer):
        self.t = trainer  # model, splits, classes, cfg, cache, spec, strategy: read-only here
        self.snapshot = self.probe = self.bn = None
        self.passed: dict = {}  # task -> epoch (1-based) at which its teacher passed the gate
        self.samples: dict = {}  # dataset name -> its seeded labelled sample (the same every epoch)

    # ------------------------------------------------------------------------------------ gate
    def chance_gap(self, task: str, metrics: dict) -> float:
        """How far the validation metrics are above chance (same scale as ``teacher_margin``)."""
        if "mae" in metrics and self.t.mae_of_mean.get(task):
            return 1.0 - metrics["mae"] / self.t.mae_of_mean[task]
        return metrics["balanced_acc"] - 1.0 / self.t.classes[task]

    def update_gate(self, val: dict, epoch: int) -> None:
        """Open the gate of each task whose teacher now beats chance by the margin (it stays open)."""
        if self.t.cfg.mode == "stl" or self.t.cfg.pseudo.mode == "naive":
            return
        for task, m in val.items():
            gap = self.chance_gap(task, m)
            if task not in self.passed and gap >= self.t.cfg.teacher_margin:
                self.passed[task] = epoch + 1
                log.info("  teacher for %s passes after epoch %d (%.3f above chance, margin %g): its labels "
                         "fill the %s-less rows from now on", task, epoch + 1, gap, self.t.cfg.teacher_margin, task)

    # -------------------------------------------------------------------------------- snapshot
    def take_snapshot(self):
        """A true copy of the current model (own variables), and its feature/logit probe."""
        import keras

        from models import feature_model
        from utils.engine.batchnorm import BatchNormStats

        if self.snapshot is None:
            with self.t.strategy.scope():
                self.snapshot = keras.models.clone_model(self.t.model)
                self.probe = feature_model(self.snapshot, list(self.t.classes))
            self.bn = BatchNormStats(self.snapshot)
        self.snapshot.set_weights(self.t.model.get_weights())
        return self.probe

    def outputs(self, table: Table, mirrored: bool = False) -> dict:
        """The snapshot's features, logits and probabilities on ``table`` (its dataset's BN statistics);
        ``mirrored``: also its outputs on the mirror images, as ``mirrored_<key>`` (angle pseudo labels)."""
        import tensorflow as tf

        from utils.evaluation import predict
        from utils.pipelines import image_dataset

        stats = dataset_stats(self.t, table)
        if stats is not None and self.bn:
            self.bn.set(stats)
        ds = image_dataset(table.paths, PREDICT_BATCH, self.t.spec.input_size, self.t.spec.channels, self.t.cache)
        out = predict(self.probe, ds, local=self.t.multiworker)
        if mirrored:
            flipped = predict(self.probe, ds.map(lambda x: tf.reverse(x, axis=[2])), local=self.t.multiworker)
            out.update({f"mirrored_{k}": v for k, v in flipped.items() if k.endswith("_probs")})
        return out

    def labelled_sample(self, table: Table) -> Table:
        """A seeded sample of at most ``LABELLED_SAMPLE`` rows: enough for the GMMs, density references
        and label propagation, and a forward pass that stays small next to the epoch's training."""
        if table.name not in self.samples:
            rows = np.arange(len(table))
            if len(rows) > LABELLED_SAMPLE:
                rows = np.sort(np.random.default_rng(self.t.cfg.seed).choice(rows, LABELLED_SAMPLE, replace=False))
            self.samples[table.name] = table.subset(rows) if len(rows) < len(table) else table
        return self.samples[table.name]

    # ----------------------------------------------------------------------------------- fills
    def fills_for(self, unlabelled: list, epoch: int) -> tuple:
        """Targets for the tasks each table in ``unlabelled`` lacks.

        Returns ``({(i, task): rows}, stats)`` where ``i`` indexes ``unlabelled``. Pseudo labels of a
        task are computed over the union of the tables lacking it (so density and distribution see the
        whole unlabelled set), from the snapshot's predictions.
        """
        cfg = self.t.cfg
        p = cfg.pseudo
        if p.mode == "naive" or epoch < cfg.warmup_epochs:
            return {}, {}
        tasks = [t for t in self.t.classes if any(t not in tb.labels for tb in unlabelled)]
        stats = {f"teacher_{t}_on": int(t in self.passed) for t in tasks}
        tasks = [t for t in tasks if t in self.passed]
        if not tasks:
            return {}, stats
        self.take_snapshot()
        memo = {}  # one forward pass per table, whatever the number of tasks that need it
        mirror = p.mode == "pseudo" and p.is_pesudo_confidence and any(self.t.kinds[t] == "degrees" for t in tasks)

        def outputs(table):
            if id(table) not in memo:
                memo[id(table)] = self.outputs(table, mirror and any(table is u for u in unlabelled))
            return memo[id(table)]

        outs = [outputs(t) for t in unlabelled]
        fills = {}
        for task in tasks:
            members = [i for i, t in enumerate(unlabelled) if task not in t.labels]
            logits = np.concatenate([outs[i][f"{task}_logits"] for i in members])
            probs = np.concatenate([outs[i][f"{task}_probs"] for i in members])
            oracle = np.concatenate([unlabelled[i].oracle.get(task, np.full(len(unlabelled[i]), -1))
                                     for i in members])
            feat_u = feat_l = None
            if p.needs_features:
                feat_u = np.concatenate([outs[i][f"{task}_features"] for i in members])
                labelled = [self.labelled_sample(sp.train) for sp in self.t.splits if task in sp.train.labels]
                if p.is_pesudo_distribution or p.is_MRF:  # the only users of the labelled features
                    feat_l = np.concatenate([outputs(t)[f"{task}_features"] for t in labelled])
                if p.is_LTN:  # LEL-LTN: the network's own label transfer output for the missing task
                    probs = np.concatenate([outs[i][f"{task}_ltn_probs"] for i in members])
                    logits = np.log(np.clip(probs, 1e-8, 1.0))
                if p.is_MRF:  # DCN-AP: propagate the labelled rows' labels, then refine with the MRF
                    from utils.label_propagation import propagate
                    from utils.mrf import mean_field

                    y_l = np.concatenate([t.labels[task] for t in labelled])
                    probs = propagate(feat_l, y_l, feat_u, self.t.classes[task], p.ap_k, p.ap_alpha, seed=p.seed)
                    probs = mean_field(probs, feat_u, p.mrf_k, p.mrf_strength, p.mrf_iterations)
                    logits = np.log(np.clip(probs, 1e-8, 1.0))
            if self.t.kinds[task] == "degrees":
                mirrored = (np.concatenate([outs[i][f"mirrored_{task}_probs"] for i in members]) if mirror
                            else None)
                signs = [FLIP_SIGNS[a] for a in self.t.class_names[task]]
                result = angle_targets(p, probs, mirrored, feat_u, feat_l, signs)
            else:
                result = build_targets(p, logits, probs, feat_u, feat_l, oracle)
            if cfg.plot_pseudo:
                from utils.pseudo_plots import plot_pseudo_labels

                plot_pseudo_labels(self.t.run.path / "pseudo", epoch + 1, task, result, feat_u, oracle, cfg.seed)
            start = 0
            for i in members:
                n = len(unlabelled[i])
                fills[(i, task)] = result.targets[start:start + n]
                start += n
            stats.update({f"pseudo_{task}_{k}": v for k, v in result.stats.items()})
        return fills, stats
