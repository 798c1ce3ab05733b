"""Tables and plots of the UTKFace study (README, "Does MTL-SA help on real faces?") from its committed run
records alone: per-task results, Delta_m against STL, the pre-registered primary contrast, the budget
curve, the factor ablation and pseudo-label accuracy against the hidden true labels.

    python benchmarks/study_report.py studies/utk          # writes studies/utk/report/*.md and *.png

Delta_m (Maninis et al., CVPR 2019): ``(1/T) sum_i (-1)^{l_i} (M_i - M_STL,i) / M_STL,i x 100 %`` over the
tasks, ``l_i = 1`` where lower is better; here ``M`` is the age MAE (lower), gender accuracy and race
balanced accuracy (race is imbalanced), and ``M_STL`` the mean of the setting's STL runs over seeds.
Intervals are 95 % percentile bootstraps over seeds (10,000 resamples, seeded); paired tests are
two-sided paired t-tests, Holm-corrected over the secondary comparisons. Standard deviations are
sample standard deviations (ddof 1).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = {"age": ("mae", -1), "gender": ("acc", 1), "race": ("balanced_acc", 1)}  # metric, +1 higher is better
LABELS = {"stl": "STL", "all_in_one": "All-in-one", "naive_alternation": "naive alternation", "dml_lwf": "DML-LWF",
          "mtl_sa_hard": "MTL-SA hard", "mtl_sa_soft": "MTL-SA soft", "pseudo_label": "Pseudo-Label",
          "lel_ltn": "LEL-LTN", "dcn_ap": "DCN-AP", "rlw": "RLW", "mtl_sa_hard_conf": "MTL-SA hard, confidence only",
          "mtl_sa_hard_dens": "MTL-SA hard, density only", "mtl_sa_hard_dist": "MTL-SA hard, distribution only"}
PRIMARY = ("mtl_sa_hard", "dml_lwf")
BN_OWN = "test_metrics_bn_own.json"  # written by benchmarks/study_bn_check.py


def label(method: str) -> str:
    if method.startswith("weighting_chosen_"):
        return f"All-in-one [{method.removeprefix('weighting_chosen_')}], chosen on validation"
    if method.startswith("weighting_"):
        return f"All-in-one [{method.removeprefix('weighting_')}]"
    return LABELS.get(method, method)


def load(folder: Path, prefer: str | None = None) -> dict:
    """method -> seed -> {"test": test metrics per task, "metrics": metrics.csv rows} for one setting/budget;
    ``prefer``: a file name whose test metrics replace test_metrics.json's where a run has it."""
    import pandas as pd

    runs = defaultdict(dict)
    for test in sorted(folder.glob("runs/*/*/test_metrics.json")):
        method, seed = test.parent.name.rsplit("-seed", 1)
        method = "stl" if method.startswith("stl_") else method
        rec = runs[method].setdefault(int(seed), {"test": {}, "metrics": []})
        if prefer and (test.parent / prefer).is_file():
            test = test.parent / prefer
        rec["test"].update(json.loads(test.read_text())["test"])
        rec["metrics"].append(pd.read_csv(test.parent / "metrics.csv"))
    return runs


def value(test: dict, task: str) -> float:
    return float(test[task][METRICS[task][0]])


def stl_reference(runs: dict) -> dict:
    return {t: float(np.mean([value(r["test"], t) for r in runs["stl"].values() if t in r["test"]])) for t in METRICS}


def delta_m(test: dict, ref: dict) -> float:
    return float(np.mean([METRICS[t][1] * (value(test, t) - ref[t]) / ref[t] * 100 for t in METRICS]))


def bootstrap(d: np.ndarray, n: int = 10000, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (n, len(d)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def sd(x) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def mean_sd(values, digits: int, sign: bool = False) -> str:
    """``mean ± sd`` (sample sd); the mean alone for one value."""
    m = f"{np.mean(values):{'+' if sign else ''}.{digits}f}"
    return m if len(values) < 2 else f"{m} ± {sd(values):.{digits}f}"


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values."""
    order = sorted(pvalues, key=pvalues.get)
    out, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[k]))
        out[k] = running
    return out


def results_table(runs: dict) -> list:
    """Markdown rows: per method, each task's metric (and accuracy beside race's balanced accuracy) and Delta_m."""
    ref = stl_reference(runs)
    lines = ["| method | seeds | age MAE (years) | gender acc | race balanced acc (acc) | Delta_m vs STL (%) "
             "[95 % bootstrap] |",
             "|---|---:|---:|---:|---:|---:|"]
    order = ["stl", "all_in_one", "naive_alternation", "dml_lwf", "mtl_sa_hard", "mtl_sa_soft", "pseudo_label",
             "lel_ltn", "dcn_ap", "rlw"]
    methods = [m for m in order if m in runs] + sorted(m for m in runs if m not in order)
    for m in methods:
        seeds = sorted(runs[m])
        if m == "stl":
            per = {t: [value(runs[m][s]["test"], t) for s in seeds if t in runs[m][s]["test"]] for t in METRICS}
            cells = [mean_sd(v, 2 if t == "age" else 3) for t, v in per.items()]
            acc = [runs[m][s]["test"]["race"]["acc"] for s in seeds if "race" in runs[m][s]["test"]]
            cells[2] += f" ({np.mean(acc):.3f})"
            lines.append(f"| {label(m)} | {len(seeds)} | " + " | ".join(cells) + " | 0 (reference) |")
            continue
        tests = [runs[m][s]["test"] for s in seeds if all(t in runs[m][s]["test"] for t in METRICS)]
        cells = [mean_sd([value(x, t) for x in tests], 2 if t == "age" else 3) for t in METRICS]
        cells[2] += f" ({np.mean([x['race']['acc'] for x in tests]):.3f})"
        dm = np.array([delta_m(x, ref) for x in tests])
        lo, hi = bootstrap(dm)
        interval = f" [{lo:+.2f}, {hi:+.2f}]" if len(dm) > 1 else ""
        delta = mean_sd(dm, 2, sign=True)
        lines.append(f"| {label(m)} | {len(tests)} | " + " | ".join(cells) + f" | {delta}{interval} |")
    return lines


def paired(runs: dict, a: str, b: str) -> dict | None:
    """Delta_m of ``a`` minus ``b`` on the seeds both have: mean, sd, bootstrap interval, t-test p, wins."""
    from scipy.stats import ttest_rel

    ref = stl_reference(runs)
    seeds = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
    if len(seeds) < 2:
        return None
    da = np.array([delta_m(runs[a][s]["test"], ref) for s in seeds])
    db = np.array([delta_m(runs[b][s]["test"], ref) for s in seeds])
    d = da - db
    lo, hi = bootstrap(d)
    p = float(ttest_rel(da, db).pvalue) if np.std(d) > 0 else float("nan")
    return {"n": len(seeds), "mean": float(d.mean()), "sd": sd(d), "ci": (lo, hi), "p": p,
            "wins": int((d > 0).sum()), "seeds": seeds}


def contrast_lines(runs: dict, secondary_baseline: str = "all_in_one") -> list:
    out = []
    prim = paired(runs, *PRIMARY)
    if prim:
        out.append(f"**Primary contrast, MTL-SA hard minus DML-LWF, Delta_m**: {prim['mean']:+.2f} ± {prim['sd']:.2f} "
                   f"points (seeds {prim['seeds']}, {prim['wins']}/{prim['n']} better), 95 % bootstrap interval "
                   f"[{prim['ci'][0]:+.2f}, {prim['ci'][1]:+.2f}], paired t-test p = {prim['p']:.3f}.")
    family = [m for m in runs if m not in ("stl", secondary_baseline) and not m.startswith("mtl_sa_hard_")
              and (not m.startswith("weighting_") or m.startswith("weighting_chosen_"))]  # the pre-registered ones
    rows = {m: paired(runs, m, secondary_baseline) for m in family}
    rows = {m: r for m, r in rows.items() if r}
    if rows:
        adj = holm({m: r["p"] for m, r in rows.items() if not np.isnan(r["p"])})
        out += ["", f"Secondary: each method's Delta_m minus {label(secondary_baseline)}'s on the same seeds "
                    f"(Holm-corrected over {len(adj)} comparisons).", "",
                "| method | pairs | difference (points) | 95 % bootstrap | better | p | p (Holm) |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for m, r in sorted(rows.items(), key=lambda kv: -kv[1]["mean"]):
            out.append(f"| {label(m)} | {r['n']} | {r['mean']:+.2f} ± {r['sd']:.2f} | [{r['ci'][0]:+.2f}, "
                       f"{r['ci'][1]:+.2f}] | {r['wins']}/{r['n']} | {r['p']:.3f} | {adj.get(m, float('nan')):.3f} |")
    return out


def gate_lines(runs: dict) -> list:
    """When each task's teacher passed the gate (first epoch with teacher_<task>_on = 1), MTL-SA hard."""
    out = []
    for m in ("mtl_sa_hard", "dml_lwf"):
        firsts = defaultdict(list)
        for rec in runs.get(m, {}).values():
            frame = rec["metrics"][0]
            for t in METRICS:
                col = f"teacher_{t}_on"
                if col in frame:
                    on = frame.index[frame[col] == 1]
                    firsts[t].append(int(frame.loc[on[0], "epoch"]) if len(on) else None)
        if firsts:
            out.append(f"{label(m)}: the teacher's gate opened after epoch (per seed) " + "; ".join(
                f"{t}: {', '.join('never' if e is None else str(e) for e in v)}" for t, v in firsts.items()) + ".")
    return out


def pseudo_accuracy_plot(runs: dict, path: Path, methods=("mtl_sa_hard", "dml_lwf", "pseudo_label")) -> list:
    """Pseudo-label quality against the hidden labels, per task and per part the labels are made on (one
    panel each: the parts differ in race mix, so their curves differ), by round, mean over seeds: gender
    and race accuracy of all / selected / rejected pseudo labels, age MAE; returns markdown rows of the last
    round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [("gender", "acc", "accuracy"), ("race", "acc", "accuracy"), ("age", "mae", "error (years)")]
    styles = {"all": "-", "selected": "--", "rejected": ":"}
    colours = dict(zip(methods, ("tab:red", "tab:blue", "tab:green")))
    frames_of = {m: [rec["metrics"][0] for rec in runs.get(m, {}).values()] for m in methods}
    parts = {}  # task -> the parts (phases) on which its pseudo labels are made
    for task, kind, _ in tasks:
        col = f"pseudo_{task}_oracle_{kind}_all"
        parts[task] = sorted({ph for fs in frames_of.values() for f in fs if col in f
                              for ph in f.loc[f[col].notna(), "phase"]})
    n_rows = max((len(v) for v in parts.values()), default=0)
    if not n_rows:
        return []
    fig, axes = plt.subplots(n_rows, 3, figsize=(14, 3.2 * n_rows), squeeze=False)
    rows = []
    for j, (task, kind, what) in enumerate(tasks):
        for i in range(n_rows):
            ax = axes[i][j]
            if i >= len(parts[task]):
                ax.axis("off")
                continue
            phase = parts[task][i]
            for m in methods:
                for part, style in styles.items():
                    if m != "mtl_sa_hard" and part != "all":
                        continue  # only MTL-SA selects
                    col = f"pseudo_{task}_oracle_{kind}_{part}"
                    picked = [f.loc[f["phase"] == phase] for f in frames_of[m] if col in f]
                    picked = [f for f in picked if len(f)]
                    if not picked:
                        continue
                    n = min(len(f) for f in picked)
                    y = np.array([f[col].to_numpy(float)[:n] for f in picked])
                    ok = ~np.isnan(y).all(axis=0)
                    if not ok.any():
                        continue
                    y = np.nanmean(y[:, ok], axis=0)
                    x = picked[0]["rounds"].to_numpy(float)[:n][ok]
                    ax.plot(x, y, style, color=colours[m], marker="o", markersize=3, label=f"{label(m)}, {part}")
                    rows.append((m, task, phase, kind, part, float(y[-1]), len(picked)))
            ax.set_title(f"{task} pseudo labels on {phase}: {what}", fontsize=9)
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    lines = ["| method | task | made on | pseudo labels | last round (mean over seeds) | seeds |",
             "|---|---|---|---|---:|---:|"]
    for m, task, phase, kind, part, v, n in rows:
        lines.append(f"| {label(m)} | {task} | {phase} | {part} | {v:.3f}{' years' if kind == 'mae' else ''} | {n} |")
    return lines


def budget_plot(settings: dict, path: Path) -> list:
    """The primary contrast per budget (rounds): mean difference with its bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, arms = [], {}
    for rounds, runs in sorted(settings.items()):
        r = paired(runs, *PRIMARY)
        if r:
            points.append((rounds, r))
            ref = stl_reference(runs)
            arms[rounds] = [np.mean([delta_m(runs[m][k]["test"], ref) for k in r["seeds"]]) for m in PRIMARY]
    lines = ["| rounds | seeds | MTL-SA hard minus DML-LWF, Delta_m (points) | 95 % bootstrap | better | p "
             "| MTL-SA hard, DML-LWF: Delta_m vs STL (%) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for rounds, r in points:
        lines.append(f"| {rounds} | {r['n']} | {r['mean']:+.2f} ± {r['sd']:.2f} | [{r['ci'][0]:+.2f}, "
                     f"{r['ci'][1]:+.2f}] | {r['wins']}/{r['n']} | {r['p']:.3f} | "
                     f"{arms[rounds][0]:+.2f}, {arms[rounds][1]:+.2f} |")
    if points:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        x = [p[0] for p in points]
        y = [p[1]["mean"] for p in points]
        err = [[p[1]["mean"] - p[1]["ci"][0] for p in points], [p[1]["ci"][1] - p[1]["mean"] for p in points]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, color="tab:red")
        for i, (m, colour) in enumerate(zip(PRIMARY, ("tab:red", "tab:blue"))):
            ax2.plot(x, [arms[r][i] for r in x], marker="o", color=colour, label=label(m))
        ax2.legend(fontsize=8, frameon=False)
        for a, ylabel, title in ((ax, "Delta_m difference (points)", "MTL-SA hard minus DML-LWF (95 % bootstrap "
                                  "over seeds)"),
                                 (ax2, "Delta_m vs STL (%)", "each arm against STL at the same budget (mean over "
                                  "seeds)")):
            a.axhline(0, color="grey", linewidth=0.8)
            a.set_xscale("log", base=2)
            a.set_xticks(x, [str(v) for v in x])
            a.set_xlabel("budget: rounds (passes over every part)")
            a.set_ylabel(ylabel)
            a.set_title(title, fontsize=9)
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return lines


def explore_lines(folder: Path, runs: dict) -> list:
    """An exploratory folder (runs made after the pre-registered ones, ``<method>_<variant>-seed<k>``):
    each variant's results and Delta_m, paired with the pre-registered method it varies on the same
    seeds. Its README.md says what was varied and why."""
    extra = load(folder)
    ref = stl_reference(runs)
    note = (folder / "README.md").read_text().strip() if (folder / "README.md").exists() else ""
    out = [f"Exploratory, after the pre-registered runs (`{folder.name}`): {note}", "",
           "| variant | seeds | age MAE (years) | gender acc | race balanced acc | Delta_m vs STL (%) | "
           "minus the pre-registered method, same seeds (points) [95 % bootstrap] |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for variant in sorted(extra):
        base = next((m for m in sorted(runs, key=len, reverse=True) if variant.startswith(m + "_")), None)
        seeds = sorted(extra[variant])
        tests = [extra[variant][k]["test"] for k in seeds]
        dm = np.array([delta_m(x, ref) for x in tests])
        cells = [mean_sd([value(x, t) for x in tests], 2 if t == "age" else 3) for t in METRICS]
        diff = ""
        if base:
            paired_seeds = [k for k in seeds if k in runs[base]]
            d = np.array([delta_m(extra[variant][k]["test"], ref) - delta_m(runs[base][k]["test"], ref)
                          for k in paired_seeds])
            lo, hi = bootstrap(d) if len(d) > 1 else (np.nan, np.nan)
            diff = f"{mean_sd(d, 2, sign=True)} [{lo:+.2f}, {hi:+.2f}] vs {label(base)}" if len(d) else ""
        out.append(f"| {variant} | {len(seeds)} | " + " | ".join(cells) + f" | {mean_sd(dm, 2, sign=True)} | {diff} |")
    merged = {**runs, **extra}
    notes = []
    for variant in sorted(extra):
        for other in ([PRIMARY[1] + variant.removeprefix(PRIMARY[0])] if variant.startswith(PRIMARY[0]) else []) + [
                "all_in_one"]:
            r = paired(merged, variant, other) if other in merged else None
            if r:
                notes.append(f"{variant} minus {label(other)}: {r['mean']:+.2f} ± {r['sd']:.2f} points (seeds "
                             f"{r['seeds']}, {r['wins']}/{r['n']} better), 95 % bootstrap [{r['ci'][0]:+.2f}, "
                             f"{r['ci'][1]:+.2f}], paired t-test p = {r['p']:.3f}.")
    return out + [""] + notes + ([""] if notes else [])


def main(argv=None) -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", help="the study's folder of run records (e.g. studies/utk)")
    a = p.parse_args(argv)
    study = Path(a.study)
    out = study / "report"
    out.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", str(study),
                                 f":(exclude){study / 'report'}"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    md = [f"Generated by `python benchmarks/study_report.py {a.study}` from the run records committed in "
          f"{commit or 'this folder'} (each run's config.json names its command line's flags).", ""]
    for setting in ("pretrained", "scratch"):
        budgets = {int(d.name[1:]): load(d) for d in sorted((study / setting).glob("r*")) if d.name[1:].isdigit()}
        if not budgets:
            continue
        main_rounds = max(budgets, key=lambda r: len(budgets[r]))
        runs = budgets[main_rounds]
        md += [f"## {setting}: {main_rounds} rounds", "", *results_table(runs), "", *contrast_lines(runs), "",
               *gate_lines(runs), ""]
        main_folder = study / setting / f"r{main_rounds}"
        if any(main_folder.glob(f"runs/*/*/{BN_OWN}")):  # benchmarks/study_bn_check.py
            own = load(main_folder, prefer=BN_OWN)
            md += [f"### {setting}, {main_rounds} rounds: every run tested with per-dataset BatchNorm statistics", "",
                   "A check added after the study (`benchmarks/study_bn_check.py`): alternating runs are tested under "
                   "statistics estimated on each dataset's own training images, joint and single-task runs under "
                   "their moving averages. Here the joint and single-task runs are tested as the alternating ones "
                   "are; the alternating rows are unchanged.", "", *results_table(own), "", *contrast_lines(own), ""]
        plot = out / f"pseudo_accuracy_{setting}.png"
        md += [f"Pseudo labels against the hidden true labels (last round, per part they are made on): `{plot.name}`",
               "",
               *pseudo_accuracy_plot(runs, plot), ""]
        if len(budgets) > 1:
            plot = out / f"budget_{setting}.png"
            md += [f"Budget curve ({setting}): `{plot.name}`", "", *budget_plot(budgets, plot), ""]
        for folder in sorted((study / setting).glob("explore_*")):
            md += explore_lines(folder, runs)
        ablation = [m for m in runs if m.startswith("mtl_sa_hard_")]
        if ablation:
            ref = stl_reference(runs)
            md += ["Factor ablation (MTL-SA hard, same seeds): Delta_m vs STL", "",
                   "| weights | seeds | Delta_m (%) | minus all three (points, seeds better) | gender pseudo acc, "
                   "selected | race pseudo acc, selected | pseudo-age error, selected (years) |",
                   "|---|---:|---:|---:|---:|---:|---:|"]
            seeds = sorted(set.intersection(*(set(runs[m]) for m in ablation)) & set(runs.get("mtl_sa_hard", {})))
            for m in ["mtl_sa_hard", *sorted(ablation)]:
                recs = [runs[m][k] for k in seeds]
                dm = [delta_m(r["test"], ref) for r in recs]
                sel = {}
                for t in ("gender", "race", "age"):  # the last round: one pass over each part
                    col = f"pseudo_{t}_oracle_{'mae' if t == 'age' else 'acc'}_selected"
                    sel[t] = np.nanmean([np.nanmean(r["metrics"][0][col].to_numpy(float)[-3:])
                                         for r in recs if col in r["metrics"][0]] or [np.nan])
                name = "all three (confidence x density x distribution)" if m == "mtl_sa_hard" else label(m)
                if m == "mtl_sa_hard":
                    dm_all, vs = np.array(dm), "-"
                else:
                    d = np.array(dm) - dm_all
                    vs = f"{mean_sd(d, 2, sign=True)} ({int((d > 0).sum())}/{len(d)})"
                md.append(f"| {name} | {len(dm)} | {np.mean(dm):+.2f} ± {sd(dm):.2f} | {vs} | {sel['gender']:.3f} | "
                          f"{sel['race']:.3f} | {sel['age']:.2f} |")
            md.append("")
    frames = [pd.read_csv(f) for f in sorted(study.glob("*/*/runs/*/*/metrics.csv"))]
    hours = sum(float(f["seconds"].sum()) for f in frames if "seconds" in f) / 3600
    md += [f"Time: {len(frames)} runs, {hours:.1f} hours of epochs (the `seconds` column of their metrics.csv).", ""]
    (out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
