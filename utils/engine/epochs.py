"""What one epoch trains on: image paths and a target row per task, from the true labels of the datasets
the schedule picks, the teacher's fills for the tasks they lack, and the target options (age smoothing,
label smoothing, class balance) that act on true labels only."""
from __future__ import annotations

import numpy as np


class EpochData:
    def __init__(self, cfg, splits: list, heads: dict, schedule, teacher, transfer: list):
        self.cfg, self.splits, self.heads, self.schedule = cfg, splits, heads, schedule
        self.teacher, self.transfer = teacher, transfer
        self.widths = {t: h.width for t, h in heads.items()}
        self.class_weights = self.true_label_weights()

    def true_label_weights(self) -> dict:
        """task -> per-class weights of true labels for --class_balance / --label_smoothing (classes only)."""
        from utils.targets import BALANCE_POWER, class_weights

        cfg = self.cfg
        if cfg.class_balance == "none" and not cfg.label_smoothing:
            return {}
        power = BALANCE_POWER[cfg.class_balance]
        out = {}
        for t, h in self.heads.items():
            if h.kind.name == "classes":
                labels = np.concatenate([sp.train.labels[t] for sp in self.splits if t in sp.train.labels])
                out[t] = class_weights(labels, h.classes, power)
        return out

    def tables(self, epoch: int) -> list:
        """The training tables whose rows the epoch trains on."""
        phase = self.schedule.phase(epoch)
        return [sp.train for sp in self.splits] if phase == "joint" else [self.splits[phase].train]

    def __call__(self, epoch: int):
        """(paths, targets, teacher statistics, phase name) for one epoch."""
        from utils.pipelines import alternating_arrays, joint_arrays, stl_arrays, true_targets
        from utils.targets import reshape_true_rows, smooth_years

        cfg, widths = self.cfg, self.widths
        ph = self.schedule.phase(epoch)
        trains = [sp.train for sp in self.splits]
        if cfg.mode == "stl":
            paths, targets = stl_arrays(trains[0], widths)
            stats, name = {}, trains[0].name
        elif ph == "joint":
            fills, stats = self.teacher.fills_for(trains, epoch)
            (paths, targets), name = joint_arrays(trains, widths, fills), "joint"
        else:
            fills, stats = self.teacher.fills_for([trains[ph]], epoch)
            task_fills = {t: rows for (_, t), rows in fills.items()}
            (paths, targets), name = alternating_arrays(trains[ph], widths, task_fills), trains[ph].name
        if self.transfer:  # the label transfer network learns from true labels only
            true = joint_arrays(trains, widths)[1] if ph == "joint" else true_targets(trains[ph], widths)
            targets.update({f"{t}_ltn": true[t] for t in self.transfer})
        if cfg.age_sigma > 0 and "age" in self.heads and self.heads["age"].kind.name == "years":
            targets["age"] = smooth_years(targets["age"], cfg.age_sigma)
        for t, w in self.class_weights.items():  # --label_smoothing / --class_balance: true class labels only
            targets[t] = reshape_true_rows(targets[t], cfg.label_smoothing, w)
        return paths, targets, stats, name
