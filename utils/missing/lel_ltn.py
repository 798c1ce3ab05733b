"""LEL-LTN (Augenstein, Ruder and Sogaard, NAACL 2018, arXiv 1802.09913): a label embedding layer shared
by the task heads and, per task, a label transfer network from the other tasks' expected label
embeddings, trained on true labels only (``models.layers.LabelEmbedding``); its outputs are the pseudo
labels, weighted and selected as in MTL-SA."""
from __future__ import annotations

import numpy as np

from utils.missing.base import FillInputs, Flag
from utils.missing.mtl_sa import MTLSA


class LELLTN(MTLSA):
    name = "lel_ltn"
    flags = (Flag("ltn_dim", int, "LEL-LTN: width of the shared label embedding space"),)
    model_needs_label_embedding = True
    # labelled rows serve only the distribution weight's GMM, as in MTL-SA: its 512 (mtl_sa.py)

    def needs(self, kinds: set) -> set:
        return super().needs(kinds) | {"label_transfer"}

    def teacher_labels(self, x: FillInputs) -> tuple:
        return np.log(np.clip(x.transferred, 1e-8, 1.0)), x.transferred

    def label(self, mode: str) -> str:
        q = self.p.selection_threshold
        return "LEL-LTN" + (f" q={q:g}" if q > 0 else "")
