"""Where an alternating run's time goes, per epoch, from the ``seconds_*`` columns of its metrics.csv.

    python benchmarks/phase_times.py runs/ALTERNATIVE_EP/<run> [more runs ...]

For each run: the median seconds per epoch of fit, pseudo labels (``seconds_targets``: the teacher's
forward passes, also alone as ``targets_forward``, and the strategy's weighting), BatchNorm
estimation, validation and checkpoint (warm-up epoch excluded), the pseudo-label / fit ratio over
the epochs whose teacher was on (min / median / max), and the run's total.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

PHASES = ("fit", "targets", "targets_forward", "bn", "eval", "checkpoint")


def summary(run: Path) -> str:
    d = pd.read_csv(run / "metrics.csv")
    later = d.iloc[1:] if len(d) > 1 else d
    on = d.filter(regex=r"^teacher_.*_on$").fillna(0).sum(axis=1) > 0
    taught = d[on & (d.phase != "joint")]
    ratio = (taught.seconds_targets / taught.seconds_fit).describe()
    medians = "  ".join(f"{p} {later[f'seconds_{p}'].median():5.2f}" for p in PHASES if f"seconds_{p}" in d)
    ratios = (f"{ratio['min']:.2f} / {ratio['50%']:.2f} / {ratio['max']:.2f} over {len(taught)} epochs"
              if len(taught) else "no teacher epochs")
    return f"{run}: median s/epoch {medians} | targets/fit {ratios} | total {d.seconds.sum():.0f} s"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    a = p.parse_args(argv)
    missing = [r for r in a.runs if not (r / "metrics.csv").is_file()]
    if missing:
        print(f"error: {missing[0]}: no metrics.csv", file=sys.stderr)
        return 1
    for run in a.runs:
        print(summary(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
