"""How many points a trained model loses to BatchNorm statistics: the normalisation probe.

    python benchmarks/bn_probe.py study_toy/runs/ALTERNATIVE_EP/*/

For each run folder, the best weights are evaluated on each dataset's validation rows (its own
task) with four sets of BatchNorm statistics, the weights unchanged:

* ``saved``   the statistics stored in best.keras (the equal mix for ``--bn_stats per_dataset|mixed``;
  the moving averages as training left them for ``moving``);
* ``engine``  what the run itself evaluated with (per-dataset estimates on 1,024 training images for
  ``per_dataset``, the saved ones otherwise);
* ``own``     the probe: statistics estimated on the evaluated validation rows themselves, the
  normalisation that fits those images best (a transductive reference no run can use; it differs from
  any training-set estimate, also when a dataset has no more than 1,024 training images and the
  engine's sample is its whole training set);
* ``other``   statistics of the other dataset(s) only (how wrong a mismatch can be).

``own - engine`` is what the run lost to normalisation, against that reference. Prints one row per run
and task, then the mean per ``--bn_stats`` mode.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def probe(run: Path) -> list:
    from models import load_model
    from utils.engine import config_from_run, load_splits
    from utils.engine.batchnorm import BN_SAMPLE, BatchNormStats, pooled, sample_paths
    from utils.evaluation import predict_table, task_metrics
    from utils.kinds import kind_of
    from utils.pipelines import image_dataset

    cfg = config_from_run(str(run))
    cfg = dataclasses.replace(cfg, data_dir=cfg.data_dir)
    splits = load_splits(cfg)
    model = load_model(run / "best.keras")
    bn = BatchNormStats(model)
    size, channels = cfg.input_size, model.input_shape[-1]
    saved = bn.get()

    def stats_of(paths):
        return bn.estimate(image_dataset(np.asarray(paths), cfg.batch_size, size, channels))

    own_all = [stats_of(sp.train.paths) for sp in splits]  # each dataset's training images (for "other")
    own_valid = [stats_of(sp.valid.paths) for sp in splits]  # the probe's reference
    own_sample = [stats_of(sample_paths(sp.train.paths, BN_SAMPLE, cfg.seed)) for sp in splits]
    rows = []
    for i, ((name, tasks), sp) in enumerate(zip(cfg.datasets, splits)):
        others = pooled([s for j, s in enumerate(own_all) if j != i]) if len(splits) > 1 else own_all[i]
        modes = {"saved": saved, "engine": own_sample[i] if cfg.bn_stats == "per_dataset" else saved,
                 "own": own_valid[i], "other": others}
        accs = {}
        for mode, stats in modes.items():
            bn.set(stats)
            pred = predict_table(model, sp.valid, 64, size, channels, None)
            for t in tasks:
                m = task_metrics([sp.valid], [pred], t, len(sp.train.info.vocab[t]),
                                 kind_of(sp.train.info.vocab[t]).name)
                accs.setdefault(t, {})[mode] = m["acc"]
        bn.set(saved)
        rows += [{"run": run.name, "bn_stats": cfg.bn_stats, "dataset": name, "task": t, **a} for t, a in accs.items()]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders of alternating runs")
    a = p.parse_args(argv)
    rows = []
    for run in map(Path, a.runs):
        if (run / "best.keras").exists():
            rows += probe(run)
    modes = ("saved", "engine", "own", "other")
    print(f"{'run':32s} {'bn_stats':12s} {'task':8s} " + " ".join(f"{m:>7s}" for m in modes) + "  own-engine")
    for r in rows:
        print(f"{r['run'][:32]:32s} {r['bn_stats']:12s} {r['task']:8s} " + " ".join(f"{r[m]:7.3f}" for m in modes)
              + f"  {r['own'] - r['engine']:+.3f}")
    by = defaultdict(list)
    for r in rows:
        by[(r["bn_stats"], r["task"])].append(r)
    print("\nmean over runs (validation accuracy of each dataset's own task)")
    for (mode, task), rs in sorted(by.items()):
        gap = np.array([r["own"] - r["engine"] for r in rs])
        means = "  ".join(f"{m} {np.mean([r[m] for r in rs]):.3f}" for m in modes)
        print(f"  --bn_stats {mode:12s} {task:8s} n={len(rs)}  {means}  lost to normalisation (own - engine) "
              f"{gap.mean():+.3f} (min {gap.min():+.3f}, max {gap.max():+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
