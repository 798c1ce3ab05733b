"""Turn run folders into the comparison table a paper needs, plus training-curve plots.

    python utils/report.py runs/ [more run folders or parents ...] --out report/

One row per method configuration (script, datasets, tasks, model, missing-task strategy, regularisers;
seeds, folds and run names are pooled), one column per task: held-out test accuracy (MAE in years for
age predicted in years, in degrees for head pose regressed as angles, plus one column per angle) as
mean +- std over the pooled runs, with the number of runs. Writes
``results.md``, ``results.csv`` and ``curves.png`` (validation accuracy, or MAE, per task over epochs,
one line per configuration, averaged over its runs).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.kinds import kind_of  # noqa: E402  (after the path line: the file also runs as a script)
from utils.tasks import TASKS  # noqa: E402


def find_runs(paths) -> list:
    """Run folders (config.json + test_metrics.json) and ``utils/evaluate.py`` output folders
    (metrics.json) at or below the given paths."""
    runs = []
    for p in map(Path, paths):
        runs += [c.parent for c in sorted(p.glob("**/test_metrics.json")) if (c.parent / "config.json").exists()]
        runs += [c.parent for c in sorted(p.glob("**/metrics.json")) if "dataset" in json.loads(c.read_text())]
    return sorted(set(runs))


def method_name(config: dict) -> str:
    """'<method> | <model> | <datasets>' for a run's config.json (the method named by RunConfig)."""
    from utils.engine.config import RunConfig
    from utils.pseudo_labels import PseudoConfig

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    pseudo = {f.name for f in dataclasses.fields(PseudoConfig)}
    cfg = RunConfig(**{k: v for k, v in config.items() if k in fields and k != "pseudo"},
                    pseudo=PseudoConfig(**{k: v for k, v in config.get("pseudo", {}).items() if k in pseudo}))
    datasets = "+".join(sorted(d for d, _ in config["datasets"]))  # joint and alternating scripts order them apart
    return f"{cfg.method_name()} | {config['model']} | {datasets}"


def collect(runs: list) -> dict:
    groups = defaultdict(list)
    for run in runs:
        if (run / "metrics.json").exists() and not (run / "test_metrics.json").exists():  # cross-dataset
            ev = json.loads((run / "metrics.json").read_text())
            config_path = Path(ev["model"]).with_name("config.json")
            if not config_path.exists():
                continue
            config = json.loads(config_path.read_text())
            label, model, trained = method_name(config).split(" | ")
            name = f"{label} | {model} | {trained} -> {ev['dataset']} ({ev['split']})"
            groups[name].append({"run": run, "test": ev["metrics"], "metrics": [], "units": units(config)})
            continue
        config = json.loads((run / "config.json").read_text())
        test = json.loads((run / "test_metrics.json").read_text())["test"]
        metrics = []
        if (run / "metrics.csv").exists():
            with open(run / "metrics.csv", newline="") as f:
                metrics = list(csv.DictReader(f))
        saved = json.loads((run / "test_metrics.json").read_text()).get("budget") or (metrics[-1] if metrics else {})
        budget = {k: float(v) for k, v in saved.items() if (k == "steps" or k.startswith("passes_")) and v != ""}
        groups[method_name(config)].append({"run": run, "test": test, "metrics": metrics, "budget": budget,
                                            "seed": config.get("seed"), "units": units(config)})
    return groups


def table(groups: dict) -> tuple:
    """Rows of (mean, std, n) per task: accuracy, or MAE for age in years and pose in degrees (then also
    one column per angle)."""
    tasks = [t for t in TASKS if any(t in r["test"] for g in groups.values() for r in g)]
    metric = {t: "mae" if all("mae" in r["test"][t] for g in groups.values() for r in g if t in r["test"])
              else "acc" for t in tasks}
    rows = []
    for name, runs in sorted(groups.items()):
        row = {"method": name, "runs": len(runs)}
        budgets = [r["budget"] for r in runs if r.get("budget")]
        row["budget"] = {k: float(np.mean([b.get(k, np.nan) for b in budgets])) for k in budgets[0]} if budgets else {}
        for t in tasks:
            vals = [r["test"][t][metric[t]] for r in runs if t in r["test"]]
            row[t] = (float(np.mean(vals)), float(np.std(vals)), len(vals)) if vals else None
        for t, key in angle_columns(groups, tasks, metric):
            vals = [r["test"][t][key] for r in runs if key in r["test"].get(t, {})]
            row[f"{t}:{key}"] = (float(np.mean(vals)), float(np.std(vals)), len(vals)) if vals else None
        rows.append(row)
    return tasks, metric, rows


def angle_columns(groups: dict, tasks: list, metric: dict) -> list:
    """(task, mae_<angle>) of tasks regressed in degrees with more than one angle: one column each."""
    out = []
    for t in tasks:
        found = {k for g in groups.values() for r in g for k in r["test"].get(t, {})}
        keys = [k for k in ("mae_yaw", "mae_pitch", "mae_roll") if k in found]
        if metric[t] == "mae" and len(keys) > 1:
            out += [(t, k) for k in keys]
    return out


def units(config: dict) -> dict:
    """Task -> the unit of its MAE (years, degrees; '' for classes), from the run's class names."""
    return {t: kind_of(names).unit for t, names in config.get("class_names", {}).items()}


def unit(task: str, groups: dict) -> str:
    """The unit of ``task``'s MAE as its runs' kinds say (``utils/kinds.py``)."""
    found = {r.get("units", {}).get(task) for g in groups.values() for r in g} - {None, ""}
    return "/".join(sorted(found)) or "?"


def write_report(groups: dict, out: Path, baselines=("All-in-one",)) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    tasks, metric, rows = table(groups)

    def fmt(cell):
        if cell is None:
            return "—"
        return f"{cell[0]:.3f}" if cell[2] == 1 else f"{cell[0]:.3f} ± {cell[1]:.3f}"

    def budget(r):
        b = r.get("budget") or {}
        if not b:
            return "—"
        return f"{b['steps']:.0f} / " + "·".join(f"{b.get('passes_' + t, 0):.0f}" for t in tasks
                                                  if f"passes_{t}" in b)

    extra = angle_columns(groups, tasks, metric)
    heads = [f"{t} (MAE, {unit(t, groups)})" if metric[t] == "mae" else f"{t} (acc)" for t in tasks]
    heads += [f"{t} {k.removeprefix('mae_')} (MAE, degrees)" for t, k in extra]
    cols = tasks + [f"{t}:{k}" for t, k in extra]
    md = ["| method | model | datasets | runs | " + " | ".join(heads) + " | steps / passes per task |",
          "|---|---|---|---:|" + "---:|" * len(cols) + "---:|"]
    for r in rows:
        label, model, data = r["method"].split(" | ")
        md.append(f"| {label} | {model} | {data} | {r['runs']} | " + " | ".join(fmt(r.get(c)) for c in cols)
                  + f" | {budget(r)} |")
    pairs = "".join(paired_with_baseline(groups, tasks, metric, b) for b in baselines)
    (out / "results.md").write_text(
        "Held-out test results of the best weights, mean ± std over runs (seeds / folds); a single value "
        "where there is one run. Budget: optimizer steps / true-label passes over each task's training "
        "rows (mean over runs).\n\n" + "\n".join(md) + "\n" + pairs)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "model", "datasets", "runs"]
                   + [f"{t}_{metric[t]}_{s}" for t in tasks for s in ("mean", "std", "n")])
        for r in rows:
            w.writerow(r["method"].split(" | ") + [r["runs"]]
                       + [v for t in tasks for v in (r[t] if r[t] else ("", "", 0))])
    plot_curves(groups, tasks, metric, out / "curves.png")
    return {"tasks": tasks, "rows": rows}


def paired_with_baseline(groups: dict, tasks: list, metric: dict, baseline: str = "All-in-one") -> str:
    """Markdown: each method minus the baseline on the same model, datasets and seed (paired runs).

    Per task: mean ± std of the paired differences (positive = better than the baseline; for MAE the
    sign is flipped), the number of seeds on which the method is better, and a two-sided paired
    t-test p-value (scipy; with three seeds only large, consistent differences reach p < 0.05).
    """
    from scipy.stats import ttest_rel

    base = {(k.split(" | ", 1)[1]): g for k, g in groups.items() if k.split(" | ")[0] == baseline}
    lines = []
    for name, runs in sorted(groups.items()):
        label, rest = name.split(" | ", 1)
        if label == baseline or rest not in base:
            continue
        ref = {r["seed"]: r for r in base[rest]}
        matched = [(r, ref[r["seed"]]) for r in runs if r.get("seed") in ref]
        if not matched:
            continue
        cells = []
        for t in tasks:
            pairs = [(r["test"][t][metric[t]], b["test"][t][metric[t]]) for r, b in matched
                     if t in r["test"] and t in b["test"]]
            if not pairs:
                cells.append("—")
                continue
            sign = -1.0 if metric[t] == "mae" else 1.0
            d = sign * (np.array([a for a, _ in pairs]) - np.array([b for _, b in pairs]))
            p = ttest_rel(*zip(*pairs)).pvalue if len(pairs) > 1 and np.std(d) > 0 else float("nan")
            cells.append(f"{d.mean():+.3f} ± {d.std():.3f} ({int((d > 0).sum())}/{len(d)}, p={p:.2f})")
        lines.append(f"| {label} | {rest.split(' | ')[0]} | {len(matched)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    return (f"\nPaired with {baseline} (same model, datasets and seed): method minus {baseline}, positive = "
            "better (MAE: lower), mean ± std over seeds (seeds better / pairs, paired t-test p).\n\n"
            "| method | model | pairs | " + " | ".join(tasks) + " |\n|---|---|---:|" + "---:|" * len(tasks) + "\n"
            + "\n".join(lines) + "\n")


def plot_curves(groups: dict, tasks: list, metric: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(groups)
    colours = plt.get_cmap("tab20")  # 20 distinct colours; solid then dashed beyond them
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks) + 2.6, 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for i, name in enumerate(names):
            key = f"val_{t}_{metric[t]}"
            curves = [[(float(m.get("rounds") or m["epoch"]), float(m[key])) for m in r["metrics"] if m.get(key)]
                      for r in groups[name]]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(map(len, curves))
            x = [p[0] for p in curves[0][:n]]  # rounds (passes over every dataset) when recorded, else epochs
            ax.plot(x, np.mean([[p[1] for p in c[:n]] for c in curves], axis=0), marker="o", markersize=2.5,
                    color=colours(i % 20), linestyle="-" if i < 20 else "--", linewidth=1.2,
                    label=name.split(" | ")[0])  # markers: a one-epoch run is a visible point
        ax.set_title(f"{t}: validation {f'MAE ({unit(t, groups)})' if metric[t] == 'mae' else 'accuracy'}", fontsize=9)
        ax.set_xlabel("round (one pass over every dataset)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center right", fontsize=6.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 2.5 / (4.5 * len(tasks) + 2.6), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+", help="run folders or folders containing them")
    p.add_argument("--out", default="report", help="output folder")
    p.add_argument("--baseline", nargs="+", default=["All-in-one"],
                   help="method names to pair every other method with, by seed (e.g. 'naive alternation')")
    a = p.parse_args(argv)
    runs = find_runs(a.paths)
    if not runs:
        print(f"error: no finished run folders (with test_metrics.json) under {' '.join(a.paths)}", file=sys.stderr)
        return 1
    write_report(collect(runs), Path(a.out), a.baseline)
    print((Path(a.out) / "results.md").read_text())
    out = Path(a.out).resolve()
    print(f"{len(runs)} runs -> {out / 'results.md'}, {out / 'results.csv'}, {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
