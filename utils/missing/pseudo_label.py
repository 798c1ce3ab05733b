"""Pseudo-Label (Lee, ICML 2013 workshop "Pseudo-Label: the simple and efficient semi-supervised learning
method"), with the confidence threshold of FixMatch (Sohn et al., NeurIPS 2020, sec. 2.2): a row whose
teacher prediction reaches ``--pl_threshold`` gets its argmax as a one-hot label at full weight; the
other rows are masked. Angles in degrees: the teacher's values at full weight (no confidence exists)."""
from __future__ import annotations

import numpy as np

from utils.missing.base import FillInputs, Flag, MissingTaskStrategy
from utils.pseudo_labels import PseudoResult, angle_targets
from utils.targets import onehot


class PseudoLabel(MissingTaskStrategy):
    name = "pseudo_label"
    flags = (Flag("pl_threshold", float, "Pseudo-Label: keep the rows whose top probability reaches this", 0.95),)

    def fill(self, x: FillInputs):
        if x.kind == "degrees":
            return angle_targets(self.p, x.probs, distilled=True)
        threshold = self.p.options.get("pl_threshold", 0.95)
        pseudo = x.probs.argmax(1)
        keep = x.probs.max(1) >= threshold
        rows = onehot(np.where(keep, pseudo, -1), x.n_classes)
        stats = {"selected_share": float(keep.mean()) if len(keep) else 0.0}
        known = x.oracle >= 0 if x.oracle is not None else np.zeros(len(keep), bool)
        if (keep & known).any():
            stats["oracle_acc_selected"] = float((pseudo == x.oracle)[keep & known].mean())
        return PseudoResult(rows, pseudo, keep.astype(np.float32), keep, stats)

    def label(self, mode: str) -> str:
        return f"Pseudo-Label t={self.p.options.get('pl_threshold', 0.95):g}"
