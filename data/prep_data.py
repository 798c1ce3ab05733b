"""Turn a raw public dataset (or the built-in synthetic faces) into face crops + a cleaned CSV.

    python data/prep_data.py --dataset toy                     # synthetic faces, no download
    python data/prep_data.py --dataset expw --root /data/ExpW  # a raw release, as distributed
    python data/prep_data.py --dataset utk_parts               # UTKFace (converted first) as 3 single-task parts

Output: ``<out>/db/<name>_cleaned.csv`` (the data contract of utils/datasets.py) and crops under
``<out>/crops/<name>/``. Skipped rows are counted and reported per reason.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401
from utils.datasets import DataError, default_data_dir, load_table  # noqa: E402
from utils.tasks import CONVERTERS as DATASET_CONVERTERS  # noqa: E402

# --dataset NAME: every registered dataset by its name, each converter by its own name (utk_parts), and the
# generic converters that write a dataset named by --name
CONVERTERS = {**{name: f"data.sources.{module}" for name, module in DATASET_CONVERTERS.items()},
              **{module: f"data.sources.{module}" for module in (*DATASET_CONVERTERS.values(), "emotion_folders")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help=f"toy | {' | '.join(CONVERTERS)}")
    p.add_argument("--root", nargs="+", default=None,
                   help="folder of the raw release (utkface: several folders, e.g. its parts, read together)")
    p.add_argument("--out", default=None, help="data root to write into (default: ./data or $MTL_DATA_DIR)")
    p.add_argument("--margin", type=float, default=0.1, help="extra border around face boxes, x box size")
    p.add_argument("--size", type=int, default=128, help="side of the saved square crops (0 = keep size)")
    p.add_argument("--limit", type=int, default=None, help="convert at most this many faces")
    p.add_argument("--detector", default="mtcnn", choices=("mtcnn", "blazeface", "dlib", "haar"),
                   help="face detector for releases without boxes or for --align (dlib falls back to haar)")
    p.add_argument("--align", action="store_true",
                   help="align faces: eyes levelled with the 68 landmarks of fgnet/aflw2000; landmark alignment "
                        "(--detector) to the demos' template for expw and pointing04 boxes, utkface chips and "
                        "detector-only crops")
    p.add_argument("--min_face_score", type=float, default=1.0, help="imdb/wiki: minimum face_score")
    p.add_argument("--allow_second_face", action="store_true", help="imdb/wiki: keep photos with a second face")
    p.add_argument("--n", type=int, default=1500, help="toy: images per synthetic dataset")
    p.add_argument("--folds", type=int, default=0,
                   help="pointing04: a fold column with the persons in this many equal groups, in order")
    p.add_argument("--name", default=None,
                   help="emotion_folders: the name of the converted set (db/<name>_cleaned.csv)")
    p.add_argument("--class_map", default=None,
                   help="emotion_folders: FOLDER=EMOTION pairs, comma-separated (e.g. anger=angry,sadness=sad,"
                        "contempt= ; an empty EMOTION drops the folder)")
    p.add_argument("--seed", type=int, default=0, help="toy, utk_parts: random seed")
    p.add_argument("--shift", type=float, default=0.5,
                   help="utk_parts: probability that a face goes to its race group's home part (0 = no shift)")
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else default_data_dir()
    try:
        if a.dataset in ("toy", "toy_emotion", "toy_pose", "toy_gender_age"):
            from utils.synthetic_faces import STYLES, write_toy

            names = list(STYLES) if a.dataset == "toy" else [a.dataset]
            for csv in write_toy(out, a.n, a.seed, datasets=names):
                print(f"{csv.stem.replace('_cleaned', '')}: wrote {len(load_table(str(csv)))} rows to {csv}")
            return 0
        if a.dataset not in CONVERTERS:
            p.error(f"unknown dataset {a.dataset!r}; choose from toy, {', '.join(CONVERTERS)}")
        module = importlib.import_module(CONVERTERS[a.dataset])
        roots = [Path(r) for r in a.root or []]
        if getattr(module, "NEEDS_ROOT", True):
            bad = [str(r) for r in roots if not r.is_dir()]
            if not roots or bad:
                raise DataError(f"--root must be the folder of the raw {a.dataset} release (not a folder: "
                                f"{', '.join(bad) or 'none given'})")
            if len(roots) > 1 and "more_roots" not in inspect.signature(module.convert).parameters:
                raise DataError(f"--root: the {a.dataset} converter reads one folder; got {len(roots)}")
        extra = {"name": a.dataset, "min_face_score": a.min_face_score,
                 "one_face": not a.allow_second_face} if a.dataset in ("imdb", "wiki") else {}
        if len(roots) > 1:
            extra["more_roots"] = roots[1:]
        if a.folds:
            if "folds" not in inspect.signature(module.convert).parameters:
                raise DataError(f"--folds: the {a.dataset} converter has no person folds (pointing04 has)")
            extra["folds"] = a.folds
        if a.dataset == "utk_parts" or CONVERTERS[a.dataset].endswith(".utk_parts"):
            extra.update(shift=a.shift, seed=a.seed)
        if getattr(module, "NAMED_OUTPUT", False):
            from utils.tasks import DATASETS

            if a.name in DATASETS:
                raise DataError(f"--name {a.name}: the name of a registered dataset; choose another so that "
                                f"its CSV is not overwritten")
            extra.update(name=a.name, class_map=a.class_map)
        from data.sources.common import confine

        with confine(roots):  # nothing outside --root is read, whatever a label file or a symlink says
            csv, n, report = module.convert(roots[0] if roots else None, out, margin=a.margin, size=a.size or None,
                                            limit=a.limit, detector=a.detector, align=a.align, **extra)
        load_table(str(csv))  # the result must pass the data contract
        print(report.summary(n, csv))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
