"""Optional pictures of one pseudo-labelling step (``--plot_pseudo``), written into the run folder.

* ``epoch_NNN_<task>_weights.png``: histogram of the final weights, selected vs rejected rows, and
  (with oracle labels) correct vs wrong pseudo labels;
* ``epoch_NNN_<task>_tsne.png``: t-SNE of up to 1500 sampled unlabelled features, coloured by pseudo
  class, rejected rows hollow (only when features were computed for the weighting).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_pseudo_labels(folder: Path, epoch: int, task: str, result, features=None, oracle=None,
                       seed: int = 1, max_points: int = 1500) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    bins = np.linspace(0, 1, 31)
    known = oracle is not None and (oracle >= 0).any()
    if known:
        right = result.pseudo == oracle
        ax.hist(result.weights[right & (oracle >= 0)], bins, alpha=0.6, label="pseudo label right")
        ax.hist(result.weights[~right & (oracle >= 0)], bins, alpha=0.6, label="pseudo label wrong")
    else:
        ax.hist(result.weights[result.selected], bins, alpha=0.6, label="selected")
        ax.hist(result.weights[~result.selected], bins, alpha=0.6, label="rejected")
    ax.set_xlabel("weight")
    ax.set_title(f"{task} pseudo labels, epoch {epoch} ({result.selected.mean():.0%} selected)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(folder / f"epoch_{epoch:03d}_{task}_weights.png")
    fig.savefig(written[-1])
    plt.close(fig)
    if features is not None and len(features) >= 10:
        from sklearn.manifold import TSNE

        rng = np.random.default_rng(seed)
        idx = rng.choice(len(features), min(max_points, len(features)), replace=False)
        xy = TSNE(2, init="pca", random_state=seed, perplexity=min(30, len(idx) - 1)).fit_transform(features[idx])
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
        sel = result.selected[idx]
        ax.scatter(*xy[sel].T, c=result.pseudo[idx][sel], cmap="tab10", s=6, vmin=0, vmax=9)
        ax.scatter(*xy[~sel].T, facecolors="none", edgecolors="grey", s=6, linewidths=0.4)
        ax.set_title(f"{task} features (t-SNE), filled = selected", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        written.append(folder / f"epoch_{epoch:03d}_{task}_tsne.png")
        fig.savefig(written[-1])
        plt.close(fig)
    return written
