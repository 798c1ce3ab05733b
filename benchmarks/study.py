"""Train every method of a comparison at equal budgets over several seeds (each run a subprocess of the
real training scripts, so the study measures what users run), then report (``utils/report.py``).

    python benchmarks/study.py --preset toy  --seeds 1 2 3 --out study_toy
    python benchmarks/study.py --preset toy  --seeds 1 2 3 --out study_toy --group weighting
    python benchmarks/study.py --preset real --seeds 1 2 3 --out study_real --shared ../shared/data
    python benchmarks/study.py --preset utk --setting pretrained --weights TRUNK.keras --seeds 1 2 3 4 5 \\
        --out /work/study_utk --collect studies/utk                     # the pre-registered study (README)

Every run gets the same ``--rounds`` (one round = one pass over every dataset), so joint and
alternating methods make the same true-label passes over each task and about the same number of
optimizer steps. Groups: ``methods`` (default: STL per task and every method of the preset),
``weighting`` (All-in-one under each loss-weighting strategy), ``bn`` (MTL-SA hard with the other
BatchNorm choices), ``ablation`` (MTL-SA hard with each weight factor alone, utk), ``budget`` (the
primary contrast's arms and STL at other ``--rounds``). ``--methods`` keeps a subset. Finished runs
(with test_metrics.json) are skipped, so an interrupted study continues where it stopped; ``--collect``
copies each run's config.json, metrics.csv and test_metrics.json (never weights) into a folder of the
repository, from which ``benchmarks/study_report.py`` regenerates every table and plot.

Presets: ``toy`` (the synthetic emotion and pose datasets), ``real`` (FER2013 emotion, Pointing'04
pose, UTKFace gender + age subsets, converted into ``<out>/data``), ``utk`` (UTKFace cut into three
disjoint single-task parts with their hidden labels kept, ``data/sources/utk_parts.py``: age, gender,
race; converted into ``<out>/data`` from ``--shared``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FACTORS = ["--is_pesudo_confidence=True", "--is_pesudo_density=True", "--is_pesudo_distribution=True"]
PSEUDO = ["--is_pesudo=True", *FACTORS, "--cluster_k=3", "--density_t=0.6", "--distill_t=2"]
# method -> (script kind, flags); STL runs are added per task of the preset
METHODS = {
    "all_in_one": ("joint", ["--is_naive=True"]),
    "naive_alternation": ("alternating", ["--is_naive=True"]),
    "dml_lwf": ("alternating", ["--is_distilled=True", "--distill_t=2"]),
    "mtl_sa_hard": ("alternating", PSEUDO + ["--selection_threshold=0.5"]),
    "mtl_sa_soft": ("alternating", PSEUDO + ["--is_interpolation=True", "--interpolation_weights=0"]),
    "sfsmr": ("manifold", ["--is_naive=True", "--is_lnorm=True", "--is_manifold=False"]),
    "slrm": ("manifold", ["--is_naive=True", "--is_trace_norm=True", "--is_manifold=True"]),
    "lel_ltn": ("joint", ["--is_pesudo=True", "--is_LTN=True", "--selection_threshold=0"]),
    "dcn_ap": ("joint", ["--is_pesudo=True", "--is_MRF=True", "--selection_threshold=0"]),
    "pseudo_label": ("alternating", ["--missing=pseudo_label"]),
    "rlw": ("joint", ["--is_naive=True", "--weighting=rlw"]),
}
WEIGHTINGS = ["uncertainty", "dwa", "gradnorm", "pcgrad", "famo", "mgda", "cagrad"]  # fixed = all_in_one
BN_MODES = ["moving", "mixed"]  # per_dataset (the default) is mtl_sa_hard itself
ABLATION = {f"mtl_sa_hard_{name}": PSEUDO[:1] + [f] + PSEUDO[4:] + ["--selection_threshold=0.5"]
            for name, f in zip(("conf", "dens", "dist"), FACTORS)}
UTK_SCRIPTS = {"joint": "CONFUSION_EA_multitask", "alternating": "ALTERNATIVE_EA"}
PRESETS = {
    # synthetic emotion + pose (ALTERNATIVE_EP / CONFUSION_EP_multitask)
    "toy": dict(datasets={"emotion": "toy_emotion", "pose": "toy_pose"}, rounds=8, batch_size=64,
                extra=["--input_size=32"], methods=[m for m in METHODS if m not in ("pseudo_label", "rlw")],
                scripts={"joint": "CONFUSION_EP_multitask", "alternating": "ALTERNATIVE_EP",
                         "manifold": "CONFUSION_EP_multitask_manifold"}),
    # real data: FER2013 emotion, Pointing'04 pose, UTKFace gender + age in years, 48 px grey; at most 2,000
    # training rows per dataset (one seed ~ 40 min on two cores), whole validation and test parts
    "real": dict(datasets={"emotion": "fer2013", "pose": "pointing04", "gender_age": "utkface"}, rounds=5,
                 batch_size=64, extra=["--input_size=48", "--train_limit=2000", "--is_augmentation=True",
                                       "--age_sigma=2"],
                 methods=[m for m in METHODS if m not in ("pseudo_label", "rlw")],
                 scripts={"joint": "CONFUSION_EPGA_multitask", "alternating": "ALTERNATIVE_EGA",
                          "manifold": "CONFUSION_EPGA_multitask"}),
    # UTKFace in three disjoint single-task parts (age, gender, race) with their hidden labels: the
    # pre-registered study of the README; 32 px grey, 1,500 training faces per part, whole test parts
    "utk": dict(datasets={"age": "utk_age", "gender": "utk_gender", "race": "utk_race"}, rounds=8, batch_size=64,
                extra=["--input_size=32", "--train_limit=1500", "--is_augmentation=True", "--lr_schedule=cosine",
                       "--lr=0.001", "--monitor=val_score"], drop=["--dataset_emotion=none"],
                methods=["all_in_one", "naive_alternation", "dml_lwf", "mtl_sa_hard", "mtl_sa_soft", "pseudo_label",
                         "lel_ltn", "dcn_ap", "rlw"],
                primary=("mtl_sa_hard", "dml_lwf"), scripts=UTK_SCRIPTS),
}
STL_TASK = {"emotion": 0, "pose": 5, "gender": 10, "age": 1, "race": 20}
SHARED = {"real": {"fer2013": ("fer2013", "0"), "pointing04": ("pointing04_sample", "128"),
                   "utkface": ("utkface_sample", "128")},
          "utk": {"utkface": (("utkface_sample", "utkface_train"), "128")}}
WEIGHT_FLAG = {"emotion": "E", "pose": "P", "gender": "G", "age": "A", "race": "R"}


def prepare(preset: str, data_dir: Path, shared: Path) -> None:
    """Convert the preset's datasets from the real releases in ``shared`` (once)."""
    for name, (subs, size) in SHARED.get(preset, {}).items():
        if not (data_dir / "db" / f"{name}_cleaned.csv").exists():
            roots = [str(shared / s) for s in ((subs,) if isinstance(subs, str) else subs)]
            subprocess.run([sys.executable, str(ROOT / "data" / "prep_data.py"), "--dataset", name, "--root", *roots,
                            "--out", str(data_dir), "--size", size], check=True)
    if preset == "utk" and not (data_dir / "db" / "utk_race_cleaned.csv").exists():
        subprocess.run([sys.executable, str(ROOT / "data" / "prep_data.py"), "--dataset", "utk_parts", "--out",
                        str(data_dir)], check=True)


def tasks_of(preset: dict) -> list:
    return [t for slot in preset["datasets"] for t in (("gender", "age") if slot == "gender_age" else (slot,))]


def runs_for(preset: dict, group: str, chosen_weighting: str | None = None) -> list:
    """(run name, script, flags) of every run of one seed."""
    ds = preset["datasets"]
    data_flags = [f"--dataset_{slot}={name}" for slot, name in ds.items()] + preset.get("drop", [])
    weights = [f"--{WEIGHT_FLAG[t]}_loss_weights=1" for t in tasks_of(preset)]
    joint, alternating = preset["scripts"]["joint"], preset["scripts"]["alternating"]
    if group == "weighting":
        return [(f"weighting_{w}", joint, data_flags + weights + ["--is_naive=True", f"--weighting={w}"])
                for w in WEIGHTINGS]
    if group == "bn":
        return [(f"mtl_sa_hard_bn_{m}", alternating,
                 data_flags + weights + METHODS["mtl_sa_hard"][1] + [f"--bn_stats={m}"]) for m in BN_MODES]
    if group == "ablation":
        return [(name, alternating, data_flags + weights + flags) for name, flags in ABLATION.items()]
    runs = []
    for slot, name in ds.items():
        for task in (("gender", "age") if slot == "gender_age" else (slot,)):
            runs.append((f"stl_{task}", "STL_general_train", [f"--dataset={name}", f"--task_type={STL_TASK[task]}"]))
    methods = preset["primary"] if group == "budget" else preset["methods"]
    for method in methods:
        kind, flags = METHODS[method]
        if kind in preset["scripts"]:
            runs.append((method, preset["scripts"][kind], data_flags + weights + flags))
    if chosen_weighting and group == "methods":
        runs.append((f"weighting_chosen_{chosen_weighting}", joint,
                     data_flags + weights + ["--is_naive=True", f"--weighting={chosen_weighting}"]))
    return runs


def choose_weighting(runs_dir: Path, seeds: list) -> str | None:
    """The loss-weighting strategy with the highest mean best validation score (``--monitor val_score``) over
    the weighting group's runs of ``seeds``: the choice the README pre-registers (no test rows are read)."""
    import pandas as pd

    scores = {}
    for w in WEIGHTINGS:
        best = []
        for seed in seeds:
            for csv in runs_dir.glob(f"*/weighting_{w}-seed{seed}/metrics.csv"):
                best.append(pd.read_csv(csv)["val_score"].max())
        if len(best) == len(seeds):
            scores[w] = sum(best) / len(best)
    return max(scores, key=scores.get) if scores else None


def collect(runs_dir: Path, dest: Path) -> int:
    """Copy every finished run's config.json, metrics.csv and test_metrics.json (no weights) under ``dest``."""
    n = 0
    for test in runs_dir.glob("*/*/test_metrics.json"):
        target = dest / test.parent.relative_to(runs_dir)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "metrics.csv", "test_metrics.json"):
            shutil.copy2(test.parent / name, target / name)
        n += 1
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--group", choices=("methods", "weighting", "bn", "ablation", "budget"), default="methods")
    p.add_argument("--methods", nargs="+", default=None, help="run only these run names (e.g. stl_age mtl_sa_hard)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per run (default: the preset's)")
    p.add_argument("--setting", default=None, help="a sub-folder of --out for this setting (e.g. pretrained)")
    p.add_argument("--weights", default=None, help="start every run from this .keras trunk (--weights)")
    p.add_argument("--weighting_seeds", type=int, nargs="+", default=None,
                   help="methods group: add the loss-weighting strategy chosen on these seeds' validation scores")
    p.add_argument("--out", default=None)
    p.add_argument("--collect", default=None, help="copy the run records into this folder of the repository")
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="real releases (real, utk)")
    a = p.parse_args(argv)
    preset = dict(PRESETS[a.preset])
    rounds = a.rounds or preset["rounds"]
    out = Path(a.out or f"study_{a.preset}")
    data_dir = out / "data"
    prepare(a.preset, data_dir, Path(a.shared))
    base = out / (a.setting or "") / f"r{rounds}"
    chosen = choose_weighting(base / "runs", a.weighting_seeds) if a.weighting_seeds else None
    if a.weighting_seeds:
        print(f"loss weighting chosen on validation (seeds {a.weighting_seeds}): {chosen}", flush=True)
    t_start = time.time()
    for seed in a.seeds:
        for method, script, flags in runs_for(preset, a.group, chosen):
            if a.methods and method not in a.methods:
                continue
            run_name = f"{method}-seed{seed}"
            if (base / "runs" / script / run_name / "test_metrics.json").exists():
                continue
            start = [f"--weights={a.weights}"] if a.weights else []
            cmd = [sys.executable, str(ROOT / f"{script}.py"), *flags, "--model=mini_xception", f"--rounds={rounds}",
                   f"--batch_size={preset['batch_size']}", *preset["extra"], *start, f"--seed={seed}",
                   f"--data_dir={data_dir}", f"--output_dir={base / 'runs'}", f"--run_name={run_name}"]
            log = base / "logs" / f"{run_name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            resume = base / "runs" / script / run_name
            if (resume / "state.json").exists():  # an interrupted run continues exactly (tests/test_resume.py)
                cmd = [sys.executable, str(ROOT / f"{script}.py"), f"--resume={resume}"]
            elif resume.exists():
                shutil.rmtree(resume)  # killed before its first checkpoint: start it again
            t0 = time.time()
            with open(log, "a") as f:
                f.write(" ".join(cmd) + "\n")
                f.flush()
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
            print(f"{a.setting or ''} r{rounds} {run_name}: {'ok' if rc == 0 else f'FAILED (rc {rc}, see {log})'} "
                  f"in {time.time() - t0:.0f}s", flush=True)
    if a.collect:
        dest = Path(a.collect) / (a.setting or "") / f"r{rounds}" / "runs"
        print(f"collected {collect(base / 'runs', dest)} run records into {dest}")
        if chosen:
            (Path(a.collect) / (a.setting or "") / f"r{rounds}" / "weighting_choice.json").write_text(
                json.dumps({"chosen": chosen, "seeds": a.weighting_seeds}, indent=2) + "\n")
    if a.preset != "utk":
        from utils.report import collect as collect_runs
        from utils.report import find_runs, write_report

        write_report(collect_runs(find_runs([base / "runs"])), base / "report", ("All-in-one", "naive alternation"))
        print((base / "report" / "results.md").read_text())
    print(f"study finished in {(time.time() - t_start) / 60:.1f} min -> {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
