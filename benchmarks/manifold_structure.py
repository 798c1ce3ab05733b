"""Does the SFSMR / SLRM penalty give the task heads the structure it is named for, and at which weight?

    python benchmarks/manifold_structure.py --weights 0.3 3 30 --out /tmp/manifold

Trains All-in-one, SFSMR (l2,1 norm of the stacked task-head matrix W = [W_1 .. W_T], one row per shared
feature) and SLRM (its trace norm) on the synthetic emotion + pose preset at each ``--norm_weights``,
then reads the heads of each run's best weights: the share of W's rows whose L2 norm is below 1 % of
the largest row's (what the l2,1 norm should create: features switched off for every task), and W's
effective rank (exp of the entropy of its normalised singular values, Roy & Vetterli 2007: what the
trace norm should lower), next to the penalty's share of the training loss and the held-out accuracy.
Each run is a subprocess of the real script; numbers are printed, never hard-coded.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMON = ["--dataset_emotion=toy_emotion", "--dataset_pose=toy_pose", "--E_loss_weights=1", "--P_loss_weights=1",
          "--model=mini_xception", "--input_size=32", "--batch_size=64", "--is_naive=True", "--is_manifold=False"]


def structure(run: Path) -> dict:
    """Near-zero row share and effective rank of the stacked task-head matrix of ``run``'s best weights."""
    from models import load_model

    model = load_model(run / "best.keras")
    heads = [layer.get_weights()[0] for layer in model.layers if layer.name.endswith("_conv") and
             layer.name.split("_")[0] in ("emotion", "pose")]
    w = np.concatenate([k.reshape(-1, k.shape[-1]) for k in heads], axis=1)
    rows = np.linalg.norm(w, axis=1)
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    return {"zero_rows": float((rows < 0.01 * rows.max()).mean()),
            "effective_rank": float(np.exp(-(p * np.log(p + 1e-12)).sum())), "full_rank": int(min(w.shape))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=float, nargs="+", default=[0.3, 3.0, 30.0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="manifold_structure")
    a = p.parse_args(argv)
    out = Path(a.out)
    arms = [("All-in-one", 0.0, [])]
    arms += [(name, w, flags + [f"--norm_weights={w}"]) for w in a.weights
             for name, flags in (("SFSMR", ["--is_lnorm=True"]), ("SLRM", ["--is_trace_norm=True"]))]
    print("| method | norm weight | penalty share of the loss (epoch 1 / last) | near-zero rows | effective rank "
          "| emotion acc | pose acc |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, w, flags in arms:
        run_name = f"{name}-{w:g}-seed{a.seed}"
        run = out / "CONFUSION_EP_multitask_manifold" / run_name
        if not (run / "test_metrics.json").exists():
            subprocess.run([sys.executable, str(ROOT / "CONFUSION_EP_multitask_manifold.py"), *COMMON, *flags,
                            f"--rounds={a.rounds}", f"--seed={a.seed}", f"--data_dir={out / 'data'}",
                            f"--output_dir={out}", f"--run_name={run_name}"], check=True, capture_output=True)
        import pandas as pd

        metrics = pd.read_csv(run / "metrics.csv")
        share = metrics["train_penalty_share"] if "train_penalty_share" in metrics else pd.Series([0.0, 0.0])
        test = json.loads((run / "test_metrics.json").read_text())["test"]
        st = structure(run)
        print(f"| {name} | {w:g} | {share.iloc[0]:.3f} / {share.iloc[-1]:.3f} | {st['zero_rows']:.3f} | "
              f"{st['effective_rank']:.2f} of {st['full_rank']} | {test['emotion']['acc']:.3f} | "
              f"{test['pose']['acc']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
