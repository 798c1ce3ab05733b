"""DCN-AP (arXiv 1609.06426): labels propagated from the labelled dataset over one kNN feature graph of
both datasets (label spreading, ``utils/label_propagation.py``), then refined by a Potts MRF with mean
field (``utils/mrf.py``); the result is weighted and selected as in MTL-SA."""
from __future__ import annotations

import numpy as np

from utils.missing.base import FillInputs, Flag
from utils.missing.mtl_sa import MTLSA


class DCNAP(MTLSA):
    name = "dcn_ap"
    flags = (
        Flag("ap_k", int, "DCN-AP: neighbours of the propagation graph"),
        Flag("ap_alpha", float, "DCN-AP: label spreading alpha (share from neighbours)"),
        Flag("mrf_k", int, "DCN-AP: neighbours of the MRF graph"),
        Flag("mrf_strength", float, "DCN-AP: Potts reward of agreeing neighbours"),
        Flag("mrf_iterations", int, "DCN-AP: mean-field updates"),
    )

    labelled_rows = 2048  # labels propagate from every labelled row it forwards (MTL-SA's GMM needs only 512)

    def needs(self, kinds: set) -> set:
        return super().needs(kinds) | {"features", "labelled"}

    def teacher_labels(self, x: FillInputs) -> tuple:
        from utils.label_propagation import propagate
        from utils.mrf import mean_field

        p = self.p
        probs = propagate(x.labelled_features, x.labelled_labels, x.features, x.n_classes, p.ap_k, p.ap_alpha,
                          seed=p.seed)
        probs = mean_field(probs, x.features, p.mrf_k, p.mrf_strength, p.mrf_iterations)
        return np.log(np.clip(probs, 1e-8, 1.0)), probs

    def label(self, mode: str) -> str:
        q = self.p.selection_threshold
        return "DCN-AP" + (f" q={q:g}" if q > 0 else "")
