"""Train STL, All-in-one, naive alternation, DML-LWF and MTL-SA (hard and soft) over several seeds,
then write the comparison table and curves (``utils/report.py``).

    python benchmarks/study.py --preset toy  --seeds 1 2 --out study_toy
    python benchmarks/study.py --preset real --seeds 1 2 3 --out study_real --shared ../shared/data

``toy``: the synthetic emotion and pose datasets. ``real``: the real samples of ExpW (emotion) and
Pointing'04 (pose), converted first with ``data/prep_data.py`` into ``<out>/data``. Every run is a
subprocess of the real training scripts, so the study measures exactly what users run.
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
METHODS = {  # name -> (script, flags); dataset flags are added per preset
    "stl_emotion": ("STL_general_train", ["--task_type=0"]),
    "stl_pose": ("STL_general_train", ["--task_type=5"]),
    "all_in_one": ("CONFUSION_EP_multitask", ["--is_naive=True"]),
    "naive_alternation": ("ALTERNATIVE_EP", ["--is_naive=True"]),
    "dml_lwf": ("ALTERNATIVE_EP", ["--is_distilled=True", "--distill_t=2"]),
    "mtl_sa_hard": ("ALTERNATIVE_EP", PSEUDO + ["--selection_threshold=0.5"]),
    "mtl_sa_soft": ("ALTERNATIVE_EP", PSEUDO + ["--is_interpolation=True", "--interpolation_weights=0"]),
}
PRESETS = {
    "toy": dict(emotion="toy_emotion", pose="toy_pose", epoch=12, batch_size=64),
    "real": dict(emotion="expw", pose="pointing04", epoch=16, batch_size=32),
}


def prepare_real(data_dir: Path, shared: Path) -> None:
    for name, sub in (("expw", "expw_sample"), ("pointing04", "pointing04_sample")):
        if not (data_dir / "db" / f"{name}_cleaned.csv").exists():
            subprocess.run([sys.executable, str(ROOT / "data" / "prep_data.py"), "--dataset", name,
                            "--root", str(shared / sub), "--out", str(data_dir)], check=True)


def dataset_flags(script: str, preset: dict, method: str) -> list:
    if script == "STL_general_train":
        return [f"--dataset={preset['pose' if method == 'stl_pose' else 'emotion']}"]
    return [f"--dataset_emotion={preset['emotion']}", f"--dataset_pose={preset['pose']}",
            "--E_loss_weights=1", "--P_loss_weights=1"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="toy")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
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
        for method in a.methods:
            script, flags = METHODS[method]
            run_name = f"{method}-seed{seed}"
            if (out / "runs" / script / run_name / "test_metrics.json").exists():
                continue
            cmd = [sys.executable, str(ROOT / f"{script}.py"), *dataset_flags(script, preset, method), *flags,
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
