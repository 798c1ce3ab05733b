"""Time and peak memory of the pseudo-label weighting at ExpW scale, vs a direct n x n implementation.

MTL-SA weighs every unlabelled sample by confidence x local density x distribution distance. The
reference computed each pseudo class's full distance matrix (O(n^2) memory). This benchmark runs
``utils.pseudo_labels.build_targets`` (chunked neighbour counts, sampled cutoff, GMMs fitted on a
sample) on n = 5k, 20k, 90k unlabelled 128-d features in 7 pseudo classes, and the direct n x n
density where it still fits, and prints both with their ratio.

    python benchmarks/pseudo_weights.py [--sizes 5000 20000 90000] [--direct_max 20000]
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# isort: off
import utils  # noqa: E402,F401  (TensorFlow switches: must come before keras)

import numpy as np  # noqa: E402

from utils.pseudo_labels import PseudoConfig, build_targets, local_density, minmax  # noqa: E402
# isort: on


class PeakMemory:
    """Peak memory allocated inside the block (numpy arrays included), via tracemalloc."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()


# ExpW's class sizes (angry, disgust, fear, happy, sad, surprise, neutral): two classes hold 72 %.
EXPW_SHARES = np.array([3671, 3995, 1088, 30537, 10559, 7060, 34883], np.float64)


def features(n: int, d: int = 128, classes: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(classes, n, p=EXPW_SHARES / EXPW_SHARES.sum())
    centres = rng.normal(0, 3, (classes, d))
    x = (centres[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)
    logits = rng.normal(0, 1, (n, classes)).astype(np.float32)
    logits[np.arange(n), labels] += 2.0
    return x, logits


def direct_density(x, labels, q):
    """The reference: per class the full n x n distance matrix, cutoff from its sorted entries."""
    out = np.zeros(len(x))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        s = x[idx].astype(np.float32)
        sq = (s * s).sum(1)
        d = np.sqrt(np.abs(sq[:, None] + sq[None, :] - 2 * s @ s.T))
        cutoff = np.sort(d, axis=None)[int(d.size * q)]
        out[idx] = minmax((d < cutoff).sum(1) - 1)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 90000])
    p.add_argument("--direct_max", type=int, default=20000, help="largest n for the direct n x n density")
    a = p.parse_args(argv)
    cfg = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, is_pesudo_density=True,
                       is_pesudo_distribution=True, cluster_k=3, density_t=0.6, selection_threshold=0.8)
    print(f"{'n':>7} {'weights s':>10} {'weights MB':>11} {'density s':>10} {'density MB':>11} "
          f"{'direct s':>9} {'direct MB':>10} {'time x':>7} {'mem x':>7}")
    for n in a.sizes:
        x_u, logits = features(n)
        x_l, _ = features(max(n // 4, 1000), seed=1)
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            result = build_targets(cfg, logits, None, x_u, x_l)
            ours = time.perf_counter() - t0
        assert result.targets.shape == (n, 7)
        labels = logits.argmax(1)
        with PeakMemory() as dens_mem:
            t0 = time.perf_counter()
            local_density(x_u, labels, 0.6, np.random.default_rng(0))
            dens = time.perf_counter() - t0
        line = f"{n:7d} {ours:10.1f} {mem.mb:11.0f} {dens:10.1f} {dens_mem.mb:11.0f}"
        if n <= a.direct_max:
            with PeakMemory() as dmem:
                t0 = time.perf_counter()
                direct_density(x_u, labels, 0.6)
                direct = time.perf_counter() - t0
            line += f" {direct:9.1f} {dmem.mb:10.0f} {direct / dens:7.2f} {dmem.mb / max(dens_mem.mb, 1):7.2f}"
        else:
            need = max(np.bincount(labels)) ** 2 * 4 * 3 / 2**30
            line += f"  direct needs ~{need:.0f} GB for its largest class: not run"
        print(line, flush=True)
    print("weights = the whole MTL-SA weighting (confidence x density x GMM-EMD distribution + selection); "
          "density = its density part; direct = the reference's n x n density; x = direct / ours")


if __name__ == "__main__":
    main()
