"""Train STL, All-in-one, DML-LWF and MTL-SA (hard and soft) over several seeds, then write the
comparison table and curves (``utils/report.py``).

    python benchmarks/study.py --preset toy  --seeds 1 2 --out study_toy
    python benchmarks/study.py --preset real --seeds 1 2 --out study_real --shared ../shared/data

``toy``: the synthetic emotion and pose datasets (plus naive alternation). ``real``: the real samples
of ExpW (emotion), Pointing'04 (pose) and UTKFace (gender, age in years), converted first with
``data/prep_data.py`` into ``<out>/data``; the alternating methods alternate over the three datasets.
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
# method -> (joint or alternating script, flags); STL runs are added per task of the preset
METHODS = {
    "all_in_one": ("joint", ["--is_naive=True"]),
    "naive_alternation": ("alternating", ["--is_naive=True"]),
    "dml_lwf": ("alternating", ["--is_distilled=True", "--distill_t=2"]),
    "mtl_sa_hard": ("alternating", PSEUDO + ["--selection_threshold=0.5"]),
    "mtl_sa_soft": ("alternating", PSEUDO + ["--is_interpolation=True", "--interpolation_weights=0"]),
}
PRESETS = {
    # synthetic emotion + pose (ALTERNATIVE_EP / CONFUSION_EP_multitask)
    "toy": dict(datasets={"emotion": "toy_emotion", "pose": "toy_pose"}, epoch=12, batch_size=64,
                scripts={"joint": "CONFUSION_EP_multitask", "alternating": "ALTERNATIVE_EP"},
                methods=list(METHODS)),
    # real samples: ExpW emotion, Pointing'04 pose, UTKFace gender + age in years
    "real": dict(datasets={"emotion": "expw", "pose": "pointing04", "gender_age": "utkface"}, epoch=10,
                 batch_size=32, scripts={"joint": "CONFUSION_EPGA_multitask", "alternating": "ALTERNATIVE_EGA"},
                 methods=["all_in_one", "dml_lwf", "mtl_sa_hard", "mtl_sa_soft"]),
}
STL_TASK_TYPE = {"emotion": 0, "pose": 5, "gender": 10, "age": 1}
SHARED = {"expw": "expw_sample", "pointing04": "pointing04_sample", "utkface": "utkface_sample"}


def prepare_real(data_dir: Path, shared: Path) -> None:
    for name, sub in SHARED.items():
        if not (data_dir / "db" / f"{name}_cleaned.csv").exists():
            subprocess.run([sys.executable, str(ROOT / "data" / "prep_data.py"), "--dataset", name,
                            "--root", str(shared / sub), "--out", str(data_dir), "--size", "96"], check=True)


def runs_for(preset: dict) -> list:
    """(run name, script, flags) of every run of one seed."""
    ds = preset["datasets"]
    runs = []
    for slot, name in ds.items():
        for task in (("gender", "age") if slot == "gender_age" else (slot,)):
            runs.append((f"stl_{task}", "STL_general_train",
                         [f"--dataset={name}", f"--task_type={STL_TASK_TYPE[task]}"]))
    data_flags = [f"--dataset_{slot}={name}" for slot, name in ds.items()]
    weights = [f"--{w}=1" for w in ("E_loss_weights", "P_loss_weights", "G_loss_weights", "A_loss_weights")
               if (w[0] == "E" and "emotion" in ds) or (w[0] == "P" and "pose" in ds)
               or (w[0] in "GA" and "gender_age" in ds)]
    for method in preset["methods"]:
        kind, flags = METHODS[method]
        runs.append((method, preset["scripts"][kind], data_flags + weights + flags))
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epoch", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="real samples (preset real)")
    a = p.parse_args(argv)
    preset = dict(PRESETS[a.preset])
    if a.epoch:
        preset["epoch"] = a.epoch
    out = Path(a.out or f"study_{a.preset}")
    data_dir = out / "data"
    if a.preset == "real":
        prepare_real(data_dir, Path(a.shared))
    t_start = time.time()
    for seed in a.seeds:
        for method, script, flags in runs_for(preset):
            run_name = f"{method}-seed{seed}"
            if (out / "runs" / script / run_name / "test_metrics.json").exists():
                continue
            cmd = [sys.executable, str(ROOT / f"{script}.py"), *flags,
                   "--model=mini_xception", f"--epoch={preset['epoch']}", f"--batch_size={preset['batch_size']}",
                   f"--seed={seed}", f"--data_dir={data_dir}", f"--output_dir={out / 'runs'}", f"--run_name={run_name}"]
            t0 = time.time()
            log = out / "logs" / f"{run_name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as f:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
            print(f"{run_name}: {'ok' if rc == 0 else f'FAILED (rc {rc}, see {log})'} in {time.time() - t0:.0f}s",
                  flush=True)
    from utils.report import collect, find_runs, write_report

    write_report(collect(find_runs([out / "runs"])), out / "report")
    print((out / "report" / "results.md").read_text())
    print(f"study finished in {(time.time() - t_start) / 60:.1f} min -> {out}/report/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
