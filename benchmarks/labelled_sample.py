"""How many labelled rows the MTL-SA distribution term needs (the teacher's ``labelled_rows``).

The distribution factor (arXiv 2003.06746, sec. 3.3) fits one GMM to the labelled rows' features
and weights each unlabelled cluster by its inverse EMD to it. Every alternating epoch the teacher
forwards a seeded sample of labelled rows for that GMM; this script compares the MTL-SA weights
computed with smaller samples against a 2,048-row reference, on a trained run's real features:

    python benchmarks/labelled_sample.py --run runs/CONFUSION_EPGA_multitask/<run> --sizes 256 512 1024

Per task and unlabelled dataset it prints, over ``--repeats`` seeded samples (min / median / max),
the Spearman correlation of the full MTL-SA weights (confidence x density x distribution) with
the reference's, and the share of rows whose hard selection (``--q``) agrees with the reference's.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REFERENCE = 2048


def sample(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, m, replace=False)) if n > m else np.arange(n)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (best.keras or model.keras + config.json)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--unlabelled", type=int, default=4000, help="unlabelled rows per dataset (seeded sample)")
    p.add_argument("--q", type=float, default=0.5, help="hard selection quantile")
    a = p.parse_args(argv)

    from scipy.stats import spearmanr

    from models import feature_model, load_model
    from utils.engine import config_from_run, load_splits
    from utils.evaluation import predict
    from utils.pipelines import image_dataset
    from utils.pseudo_labels import PseudoConfig, select, selective_targets

    run = Path(a.run)
    cfg = config_from_run(str(run))
    splits = load_splits(cfg)
    model = load_model(next(f for f in (run / "best.keras", run / "model.keras") if f.exists()))
    tasks = [t for _, ts in cfg.datasets for t in ts]
    probe = feature_model(model, tasks)
    size, channels = cfg.input_size, model.input_shape[-1]
    pc = PseudoConfig(is_pesudo=True, is_pesudo_confidence=True, is_pesudo_density=True,
                      is_pesudo_distribution=True, cluster_k=3, density_t=0.6, selection_threshold=a.q)

    def outputs(table, m):
        return predict(probe, image_dataset(table.paths[sample(len(table), m, cfg.seed)], 256, size, channels))

    def spread(v):
        return " / ".join(f"{x:.3f}" for x in (min(v), np.median(v), max(v)))

    print(f"{'task':8} {'unlabelled':12} {'rows':>5}  {'spearman min/med/max':24} {'same selection min/med/max'}")
    for task in tasks:
        labelled = [sp.train for sp in splits if task in sp.train.labels]
        ref_out = [outputs(t, REFERENCE)[f"{task}_features"] for t in labelled]
        ref = np.concatenate(ref_out)
        for sp in splits:
            if task in sp.train.labels:
                continue
            out = outputs(sp.train, a.unlabelled)
            args = (out[f"{task}_logits"], out[f"{task}_probs"], out[f"{task}_features"])
            w_ref = selective_targets(pc, *args, ref).weights
            for m in a.sizes:
                rho, same = [], []
                for r in range(a.repeats):
                    sub = np.concatenate([f[sample(len(f), max(1, m * len(f) // len(ref)), 100 + r)]
                                          for f in ref_out])
                    w = selective_targets(pc, *args, sub).weights
                    rho.append(spearmanr(w, w_ref).statistic)
                    same.append(np.mean(select(w, a.q) == select(w_ref, a.q)))
                print(f"{task:8} {sp.train.name:12} {len(sub):5d}  {spread(rho):24} {spread(same)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
