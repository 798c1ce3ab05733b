"""Re-test a study's joint and single-task runs with per-dataset BatchNorm statistics, as alternating runs are tested.

    python benchmarks/study_bn_check.py --runs /work/study_utk --records studies/utk
    python benchmarks/study_report.py studies/utk       # then reports both ways

An alternating run (``--bn_stats per_dataset``) tests each dataset under statistics estimated on that
dataset's own training images; joint and single-task runs are tested under the moving averages that
training left (``utils/engine/batchnorm.py``). A comparison between the two kinds of method therefore
differs in its test-time statistics as well as in its training. This script removes that difference
after the fact: for every run record in ``--records`` whose run folder in ``--runs`` still has its
weights and was not tested per dataset, it evaluates ``best.keras`` on each of its datasets' test parts
with ``utils/evaluate.py``'s ``bn_stats="own"`` (the alternating runs' test) and writes
``test_metrics_bn_own.json`` beside the record's ``test_metrics.json``. The weights are untouched.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402,F401  (TensorFlow switches)
from benchmarks.study_report import BN_OWN as OUT_NAME  # noqa: E402

log = logging.getLogger("benchmarks.study_bn_check")


def retest(run: Path) -> dict:
    """``{task: metrics}`` of the run's best.keras on each of its datasets' test part, per-dataset statistics."""
    from utils.evaluate import evaluate, load_model_and_config

    net, config, _ = load_model_and_config(str(run), None)
    out = {}
    for name, tasks in config["datasets"]:
        metrics, _ = evaluate(net, config, name, "test", tasks, config.get("data_dir"), bn_stats="own")
        out.update({t: {k: v for k, v in m.items() if isinstance(v, (int, float))} for t, m in metrics.items()})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, help="the study's output folder (run folders with weights)")
    p.add_argument("--records", required=True, help="the committed records (config.json, test_metrics.json)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from utils.evaluate import tested_per_dataset

    runs, records = Path(a.runs), Path(a.records)
    done = skipped = 0
    for record in sorted(records.glob("*/*/runs/*/*/test_metrics.json")):
        rel = record.parent.relative_to(records)
        config = json.loads((record.parent / "config.json").read_text())
        target = record.parent / OUT_NAME
        if tested_per_dataset(config) or target.exists():
            continue
        run = runs / rel
        if not (run / "best.keras").is_file():
            log.warning("%s: no best.keras in %s; skipped", rel, run)
            skipped += 1
            continue
        metrics = retest(run)
        target.write_text(json.dumps({"run": str(rel), "bn_stats": "own", "test": metrics}, indent=2))
        log.info("%s: %s", rel, ", ".join(f"{t} {m.get('mae', m.get('balanced_acc')):.4f}" for t, m in metrics.items()))
        done += 1
    print(f"re-tested {done} runs ({skipped} without weights); records in {records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
