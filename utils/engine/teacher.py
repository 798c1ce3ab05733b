"""The teacher: the model as it stands before an epoch, filling the tasks a dataset does not label.

Before each epoch that needs them, the model's predictions on the unlabelled rows become distilled
or pseudo targets (``utils.pseudo_labels``). Every target is computed before the epoch's first step,
so the teacher is the model at the epoch's start without a copy of its weights: it reads the model through the probe
(``probe.py``, as validation does), with each dataset's BatchNorm statistics set for its rows and the
model's own restored afterwards. A task's teacher is used
only once it beats chance on that task's validation rows by ``--teacher_margin`` (balanced accuracy
above 1/K; for ages in years, an MAE that much below predicting the training mean, as a fraction; the
task kind's ``chance_gap``): a
model at chance teaches noise (after one warm-up epoch on the synthetic preset, pose pseudo labels were
21 % right). Until then the task's missing rows stay masked, as in All-in-one.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from utils.datasets import Table
from utils.missing import FillInputs
from utils.tasks import FLIP_SIGNS

log = logging.getLogger(__name__)


def oracle_of(table: Table, task: str, names: tuple) -> np.ndarray:
    """The table's hidden true labels of ``task`` when they are in the run's vocabulary, else -1s."""
    if task in table.oracle and tuple(table.oracle_vocab.get(task, ())) == tuple(names):
        return table.oracle[task]
    return np.full(len(table), -1)


class Teacher:
    """Fills missing tasks from the run's missing-task ``strategy`` (``utils/missing/``) with the ``probe``'s
    outputs; it owns the gate (which tasks' teachers passed) and the labelled samples."""

    def __init__(self, strategy, heads: dict, splits: list, probe, margin: float, warmup: int, seed: int,
                 mae_of_mean: dict, plot_dir=None):
        self.strategy, self.heads, self.splits, self.probe = strategy, heads, splits, probe
        self.margin, self.warmup, self.seed, self.mae_of_mean = margin, warmup, seed, mae_of_mean
        self.plot_dir = plot_dir  # a folder for weight histograms and t-SNE plots (--plot_pseudo), or None
        self.passed: dict = {}  # task -> epoch (1-based) at which its teacher passed the gate
        self.samples: dict = {}  # dataset name -> its seeded labelled sample (the same every epoch)

    def state_dict(self) -> dict:
        return {"passed": dict(self.passed)}

    def load_state_dict(self, state: dict) -> None:
        self.passed = dict(state.get("passed", {}))

    # ------------------------------------------------------------------------------------ gate
    def update_gate(self, val: dict, epoch: int) -> None:
        """Open the gate of each task whose teacher now beats chance by the margin (it stays open)."""
        if not self.strategy.uses_teacher:
            return
        for task, m in val.items():
            head = self.heads[task]
            gap = head.kind.chance_gap(m, head.classes, self.mae_of_mean.get(task))
            if task not in self.passed and gap >= self.margin:
                self.passed[task] = epoch + 1
                log.info("  teacher for %s passes after epoch %d (%.3f above chance, margin %g): its labels "
                         "fill the %s-less rows from now on", task, epoch + 1, gap, self.margin, task)

    def labelled_sample(self, table: Table) -> Table:
        """A seeded sample of at most the strategy's ``labelled_rows`` rows (the same every epoch): enough for
        its use of the labelled features, and a forward pass that stays small next to the epoch's training."""
        if table.name not in self.samples:
            rows, m = np.arange(len(table)), self.strategy.labelled_rows
            if len(rows) > m:
                rows = np.sort(np.random.default_rng(self.seed).choice(rows, m, replace=False))
            self.samples[table.name] = table.subset(rows) if len(rows) < len(table) else table
        return self.samples[table.name]

    # ----------------------------------------------------------------------------------- fills
    def fills_for(self, unlabelled: list, epoch: int) -> tuple:
        """Targets for the tasks each table in ``unlabelled`` lacks, from the run's missing-task strategy.

        Returns ``({(i, task): rows}, stats)`` where ``i`` indexes ``unlabelled``. Pseudo labels of a
        task are computed over the union of the tables lacking it (so density and distribution see the
        whole unlabelled set), from the teacher's outputs that the strategy ``needs``.
        """
        strategy = self.strategy
        if not strategy.uses_teacher or epoch < self.warmup:
            return {}, {}
        tasks = [t for t in self.heads if any(t not in tb.labels for tb in unlabelled)]
        stats = {f"teacher_{t}_on": int(t in self.passed) for t in tasks}
        tasks = [t for t in tasks if t in self.passed]
        if not tasks:
            return {}, stats
        needs = strategy.needs({self.heads[t].kind for t in tasks})
        labelled = {t: [self.labelled_sample(sp.train) for sp in self.splits if t in sp.train.labels]
                    for t in tasks} if "labelled" in needs else {}
        memo, t0 = {}, time.time()  # one forward pass per table, whatever the number of tasks that need it
        with self.probe.own_statistics():
            for table in [*unlabelled, *(tb for tbs in labelled.values() for tb in tbs)]:
                if id(table) not in memo:
                    memo[id(table)] = self.probe.outputs(
                        table, "mirror" in needs and any(table is u for u in unlabelled))
        stats["seconds_targets_forward"] = round(time.time() - t0, 2)  # the rest of seconds_targets: weighting
        outs = [memo[id(t)] for t in unlabelled]
        fills = {}
        for task in tasks:
            head = self.heads[task]
            members = [i for i, t in enumerate(unlabelled) if task not in t.labels]

            def part(key, members=members):
                return np.concatenate([outs[i][key] for i in members])

            x = FillInputs(task, head.kind, head.classes, part(f"{task}_logits"), part(f"{task}_probs"),
                           oracle=np.concatenate([oracle_of(unlabelled[i], task, head.names) for i in members]),
                           flip_signs=tuple(FLIP_SIGNS.get(a, 1.0) for a in head.names))
            if "features" in needs:
                x.features = part(f"{task}_features")
            if "labelled" in needs:
                x.labelled_features = np.concatenate([memo[id(t)][f"{task}_features"] for t in labelled[task]])
                x.labelled_labels = np.concatenate([t.labels[task] for t in labelled[task]])
            if "mirror" in needs and head.kind.mirror_confidence:
                x.mirrored = part(f"mirrored_{task}_probs")
            if "label_transfer" in needs:
                x.transferred = part(f"{task}_ltn_probs")
            result = strategy.fill(x)
            if result is None:
                continue
            if self.plot_dir is not None and not head.kind.regression:
                from utils.pseudo_plots import plot_pseudo_labels

                plot_pseudo_labels(self.plot_dir, epoch + 1, task, result, x.features, x.oracle, self.seed)
            start = 0
            for i in members:
                n = len(unlabelled[i])
                fills[(i, task)] = result.targets[start:start + n]
                start += n
            stats.update({f"pseudo_{task}_{k}": v for k, v in result.stats.items()})
        return fills, stats
