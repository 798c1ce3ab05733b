"""Distilled soft labels ``softmax(z / T)`` of a frozen copy of the model (Hinton et al. 2015); in
alternating training this is DML-LWF / learning without forgetting (Li and Hoiem, ECCV 2016)."""
from __future__ import annotations

from utils.missing.base import FillInputs, Flag, MissingTaskStrategy
from utils.pseudo_labels import distilled_targets


class Distilled(MissingTaskStrategy):
    name = "distilled"
    flags = (Flag("distill_t", float, "distillation temperature T"),)

    def fill(self, x: FillInputs):
        return distilled_targets(self.p, x.kind, x.logits, x.probs, x.oracle)

    def label(self, mode: str) -> str:
        return ("DML-LWF" if mode == "alternating" else "distilled") + f" T={self.p.distill_t:g}"
