"""Train every method of the comparison at equal budgets over several seeds, then write the table,
the paired comparison with All-in-one, and the curves (``utils/report.py``).

    python benchmarks/study.py --preset toy  --seeds 1 2 3 --out study_toy
    python benchmarks/study.py --preset toy  --seeds 1 2 3 --out study_toy --group weighting
    python benchmarks/study.py --preset toy  --seeds 1 2 3 --out study_toy --group bn
    python benchmarks/study.py --preset real --seeds 1 2 3 --out study_real --shared ../shared/data

Every run gets the same ``--rounds`` (one round = one pass over every dataset), so joint and
alternating methods make the same true-label passes over each task and about the same number of
optimizer steps; the report prints both beside the accuracies. ``--group methods`` (default) runs
STL, All-in-one, naive alternation, DML-LWF, MTL-SA hard and soft, SFSMR, SLRM, LEL-LTN and DCN-AP;
``--group weighting`` runs All-in-one under each loss-weighting strategy (``utils/weighting.py``);
``--group bn`` runs MTL-SA hard with the other BatchNorm choices (``--bn_stats moving|mixed``). The
groups share an output folder, so one report (and the paired comparison) covers them all.
``toy``: the synthetic emotion and pose datasets. ``real``: FER2013 (emotion), Pointing'04 (pose) and
UTKFace (gender, age in years) subsets, converted first with ``data/prep_data.py`` into ``<out>/data``.
Every run is a subprocess of the real training scripts, so the study measures what users run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PSEUDO = ["--is_pesudo=True", "--is_pesudo_confidence=True", "--is_pesudo_density=True",
          "--is_pesudo_distribution=True", "--cluster_k=3", "--density_t=0.6", "--distill_t=2"]
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
}
WEIGHTINGS = ["uncertainty", "dwa", "gradnorm", "pcgrad", "famo", "mgda", "cagrad"]  # fixed = all_in_one
BN_MODES = ["moving", "mixed"]  # per_dataset (the default) is mtl_sa_hard itself
PRESETS = {
    # synthetic emotion + pose (ALTERNATIVE_EP / CONFUSION_EP_multitask)
    "toy": dict(datasets={"emotion": "toy_emotion", "pose": "toy_pose"}, rounds=8, batch_size=64,
                extra=["--input_size=32"],
                scripts={"joint": "CONFUSION_EP_multitask", "alternating": "ALTERNATIVE_EP",
                         "manifold": "CONFUSION_EP_multitask_manifold"}),
    # real data: FER2013 emotion, Pointing'04 pose, UTKFace gender + age in years, 48 px grey; at most 2,000
    # training rows per dataset (one seed ~ 40 min on two cores), whole validation and test parts
    "real": dict(datasets={"emotion": "fer2013", "pose": "pointing04", "gender_age": "utkface"}, rounds=5,
                 batch_size=64, extra=["--input_size=48", "--train_limit=2000", "--is_augmentation=True",
                                       "--age_sigma=2"],
                 scripts={"joint": "CONFUSION_EPGA_multitask", "alternating": "ALTERNATIVE_EGA",
                          "manifold": "CONFUSION_EPGA_multitask"}),
}
STL_TASK_TYPE = {"emotion": 0, "pose": 5, "gender": 10, "age": 1}
SHARED = {"fer2013": ("fer2013", "0"), "pointing04": ("pointing04_sample", "128"), "utkface": ("utkface_sample", "128")}


def prepare_real(data_dir: Path, shared: Path) -> None:
    for name, (sub, size) in SHARED.items():
        if not (data_dir / "db" / f"{name}_cleaned.csv").exists():
            subprocess.run([sys.executable, str(ROOT / "data" / "prep_data.py"), "--dataset", name,
                            "--root", str(shared / sub), "--out", str(data_dir), "--size", size], check=True)


def runs_for(preset: dict, group: str) -> list:
    """(run name, script, flags) of every run of one seed."""
    ds = preset["datasets"]
    data_flags = [f"--dataset_{slot}={name}" for slot, name in ds.items()]
    weights = [f"--{w}=1" for w in ("E_loss_weights", "P_loss_weights", "G_loss_weights", "A_loss_weights")
               if (w[0] == "E" and "emotion" in ds) or (w[0] == "P" and "pose" in ds)
               or (w[0] in "GA" and "gender_age" in ds)]
    if group == "weighting":
        return [(f"weighting_{w}", preset["scripts"]["joint"], data_flags + weights + ["--is_naive=True",
                                                                                      f"--weighting={w}"])
                for w in WEIGHTINGS]
    if group == "bn":
        return [(f"mtl_sa_hard_bn_{m}", preset["scripts"]["alternating"],
                 data_flags + weights + METHODS["mtl_sa_hard"][1] + [f"--bn_stats={m}"]) for m in BN_MODES]
    runs = []
    for slot, name in ds.items():
        for task in (("gender", "age") if slot == "gender_age" else (slot,)):
            runs.append((f"stl_{task}", "STL_general_train",
                         [f"--dataset={name}", f"--task_type={STL_TASK_TYPE[task]}"]))
    for method, (kind, flags) in METHODS.items():
        if kind in preset["scripts"]:
            runs.append((method, preset["scripts"][kind], data_flags + weights + flags))
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--group", choices=("methods", "weighting", "bn"), default="methods")
    p.add_argument("--rounds", type=int, default=None, help="rounds per run (default: the preset's)")
    p.add_argument("--out", default=None)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="real samples (preset real)")
    a = p.parse_args(argv)
    preset = dict(PRESETS[a.preset])
    if a.rounds:
        preset["rounds"] = a.rounds
    out = Path(a.out or f"study_{a.preset}")
    data_dir = out / "data"
    if a.preset == "real":
        prepare_real(data_dir, Path(a.shared))
    t_start = time.time()
    for seed in a.seeds:
        for method, script, flags in runs_for(preset, a.group):
            run_name = f"{method}-seed{seed}"
            if (out / "runs" / script / run_name / "test_metrics.json").exists():
                continue
            cmd = [sys.executable, str(ROOT / f"{script}.py"), *flags,
                   "--model=mini_xception", f"--rounds={preset['rounds']}", f"--batch_size={preset['batch_size']}",
                   *preset["extra"],
                   f"--seed={seed}", f"--data_dir={data_dir}", f"--output_dir={out / 'runs'}", f"--run_name={run_name}"]
            t0 = time.time()
            log = out / "logs" / f"{run_name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as f:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
            print(f"{run_name}: {'ok' if rc == 0 else f'FAILED (rc {rc}, see {log})'} in {time.time() - t0:.0f}s",
                  flush=True)
    from utils.report import collect, find_runs, write_report

    write_report(collect(find_runs([out / "runs"])), out / "report", ("All-in-one", "naive alternation"))
    print((out / "report" / "results.md").read_text())
    print(f"study finished in {(time.time() - t_start) / 60:.1f} min -> {out}/report/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
