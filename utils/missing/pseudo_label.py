"""Pseudo-Label (Lee, ICML 2013 workshop "Pseudo-Label: the simple and efficient semi-supervised learning
method"), with the confidence threshold of FixMatch (Sohn et al., NeurIPS 2020, sec. 2.2): a row whose
teacher prediction reaches ``--pl_threshold`` gets its answer as a label at full weight; the other rows
are masked. The confidence is the task kind's (``utils/kinds.py``): the top probability for classes,
the mass within 5 years of the expected age for years; values regressed without a probability (angles)
are all kept."""
from __future__ import annotations

import numpy as np

from utils.missing.base import FillInputs, Flag, MissingTaskStrategy
from utils.pseudo_labels import PseudoResult, with_stats


class PseudoLabel(MissingTaskStrategy):
    name = "pseudo_label"
    flags = (Flag("pl_threshold", float, "Pseudo-Label: keep the rows whose top probability reaches this", 0.95),)

    def fill(self, x: FillInputs):
        confidence, values = x.kind.confidence(x.probs)
        keep = confidence >= self.p.options.get("pl_threshold", 0.95)
        rows = np.where(keep[:, None], x.kind.weighted(values, np.ones(len(keep)), x.probs.shape[1]), 0.0)
        return with_stats(x.kind, PseudoResult(rows.astype(np.float32), values, keep.astype(np.float32), keep),
                          x.oracle)

    def label(self, mode: str) -> str:
        return f"Pseudo-Label t={self.p.options.get('pl_threshold', 0.95):g}"
