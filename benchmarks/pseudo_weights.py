"""Time and peak memory (RSS of a fresh process) of the MTL-SA pseudo-label weighting as n grows.

MTL-SA weighs every unlabelled sample by confidence x local density x distribution distance. Each
measurement runs ``utils.pseudo_labels.selective_targets`` (confidence x sampled-reference density x
GMM-EMD distribution, then selection) in a fresh Python process on n unlabelled 128-d features in 7
pseudo classes with ExpW's class balance, and reports its wall time and the process's peak resident
memory (``ru_maxrss``: data, numpy, scikit-learn and POT included; TensorFlow is never imported).
Arms are repeated ``--repeats`` times, interleaved (every size once per round), and each size prints
min / median / max, plus the growth factor of the median time per step of n. The reference's n x n
density (arm ``direct``) runs where its largest class fits ``--direct_max``.

    python benchmarks/pseudo_weights.py [--sizes 5000 20000 90000 300000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from utils.kinds import KINDS, softmax
from utils.pseudo_labels import PseudoConfig, minmax, selective_targets
n, arm = {n}, {arm!r}
shares = np.array([3671, 3995, 1088, 30537, 10559, 7060, 34883], np.float64)  # ExpW's classes
rng = np.random.default_rng(0)
labels = rng.choice(7, n, p=shares / shares.sum())
centres = rng.normal(0, 3, (7, 128))
x_u = (centres[labels] + rng.normal(0, 1, (n, 128))).astype(np.float32)
logits = rng.normal(0, 1, (n, 7)).astype(np.float32)
logits[np.arange(n), labels] += 2.0
x_l = (centres[rng.choice(7, max(n // 4, 1000))] + rng.normal(0, 1, (max(n // 4, 1000), 128))).astype(np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if arm == "ours":
    cfg = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, is_pesudo_density=True,
                       is_pesudo_distribution=True, cluster_k=3, density_t=0.6, selection_threshold=0.8)
    assert selective_targets(cfg, KINDS['classes'], logits, softmax(logits), x_u, x_l).targets.shape == (n, 7)
else:  # the reference: per class the full n x n distance matrix, cutoff from its sorted entries
    for c in np.unique(labels):
        s = x_u[labels == c]
        sq = (s * s).sum(1)
        d = np.sqrt(np.abs(sq[:, None] + sq[None, :] - 2 * s @ s.T))
        minmax((d < np.sort(d, axis=None)[int(d.size * 0.6)]).sum(1) - 1)
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mb": base / 1024}}))
"""


def measure(n: int, arm: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), n=n, arm=arm)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: n={n} {arm}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(values) -> str:
    return f"{min(values):7.1f} / {statistics.median(values):7.1f} / {max(values):7.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 90000, 300000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--direct_max", type=int, default=20000, help="largest n for the reference's n x n density")
    a = p.parse_args(argv)
    arms = [(n, "ours") for n in a.sizes] + [(n, "direct") for n in a.sizes if n <= a.direct_max]
    runs = {arm: [] for arm in arms}
    for r in range(a.repeats):
        for arm in (arms if r % 2 == 0 else arms[::-1]):  # interleaved, alternating order
            runs[arm].append(measure(*arm))
    print(f"{'n':>7} {'arm':>7} {'seconds min / median / max':>28} {'peak RSS MB min / median / max':>32} "
          f"{'time growth':>12}")
    previous = None
    for n, arm in arms:
        secs = [m["seconds"] for m in runs[(n, arm)]]
        mbs = [m["peak_mb"] for m in runs[(n, arm)]]
        growth = ""
        if arm == "ours":
            if previous:
                growth = f"x{statistics.median(secs) / previous[1]:.1f} for n x{n / previous[0]:.1f}"
            previous = (n, statistics.median(secs))
        print(f"{n:7d} {arm:>7} {spread(secs):>28} {spread(mbs):>32} {growth:>12}")
    print(f"ours = the whole MTL-SA weighting in a fresh process (features generated inside it; peak RSS "
          f"includes them); direct = the reference's n x n density alone; {a.repeats} interleaved repeats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
