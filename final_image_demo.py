"""Detect every face in an image (or a folder of images), predict each attribute the model has, draw them.

    python final_image_demo.py                              # shipped model, built-in sample photo
    python final_image_demo.py --image group.jpg --json faces.jsonl
    python final_image_demo.py --image photos/ --run latest # newest run under runs/, every image in photos/
"""
import argparse
import json
import sys
from pathlib import Path

import utils  # noqa: F401  (TensorFlow environment switches)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def inputs(image: str | None) -> list:
    """[(name, path or None)]: one image, every image of a folder, or the built-in photo."""
    from utils.demo import DemoError

    if image is None:
        return [("astronaut", None)]
    path = Path(image)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DemoError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return [(f.stem, f) for f in files]
    return [(path.stem, path)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default=None, help="image file or folder (default: the built-in sample photograph)")
    p.add_argument("--run", default=None, help="run folder (its best.keras), or 'latest' for the newest run")
    p.add_argument("--weights", default=None, help=".keras model, or a released mini-Xception .hdf5")
    p.add_argument("--runs_dir", default="runs", help="where --run latest looks")
    p.add_argument("--output", default=None,
                   help="annotated image, or folder for several (default: demo_output/<name>_annotated.jpg)")
    p.add_argument("--json", default=None, help="also write one JSON record per face (JSON Lines) to this file")
    p.add_argument("--detector", default="mtcnn", choices=("mtcnn", "dlib", "haar"))
    p.add_argument("--min_face", type=int, default=40, help="smallest face side (pixels) to look for")
    p.add_argument("--tasks", nargs="*", default=None, help="subset of the model's tasks to show")
    p.add_argument("--margin", type=float, default=0.15, help="border around boxes of faces without landmarks")
    a = p.parse_args(argv)

    import cv2

    from utils.demo import DemoError, draw, face_records, load_predictor, read_image
    from utils.faces import FaceError, detect, make_detector

    n_faces = 0
    try:
        if a.json and not Path(a.json).resolve().parent.is_dir():
            raise DemoError(f"--json {a.json}: folder {Path(a.json).resolve().parent} does not exist")
        items = inputs(a.image)
        out_dir = Path(a.output) if a.output and len(items) > 1 else Path("demo_output")
        if a.output and len(items) == 1 and not Path(a.output).resolve().parent.is_dir():
            raise DemoError(f"--output {a.output}: folder {Path(a.output).resolve().parent} does not exist")
        predictor = load_predictor(a.run, a.weights, a.runs_dir)
        predictor.margin = a.margin
        if a.tasks:
            unknown = set(a.tasks) - set(predictor.tasks)
            if unknown:
                raise DemoError(f"the model has no task {sorted(unknown)}; it predicts {predictor.tasks}")
            predictor.tasks = [t for t in predictor.tasks if t in a.tasks]
        print(f"model: {predictor.source} (tasks: {', '.join(predictor.tasks)})")
        detector = make_detector(a.detector, a.min_face)
        lines = []
        for name, path in items:
            if path is None:
                from utils.demo_samples import sample_photo

                rgb = sample_photo()
                print("no --image given: using the built-in sample photograph (scikit-image astronaut)")
            else:
                try:
                    rgb = read_image(str(path))
                except DemoError as exc:
                    if len(items) == 1:
                        raise
                    print(f"skipped: {exc}", file=sys.stderr)
                    continue
            records = face_records(predictor, rgb, detect(detector, rgb))
            out = Path(a.output) if a.output and len(items) == 1 else out_dir / f"{name}_annotated.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out), cv2.cvtColor(draw(rgb, records), cv2.COLOR_RGB2BGR)):
                raise DemoError(f"cannot write {out} (unknown image suffix or no permission?)")
            print(f"{path or name}: {len(records) or 'no'} face{'s' if len(records) != 1 else ''}; "
                  f"annotated image: {out.resolve()}")
            for i, rec in enumerate(records):
                print(f"  face {i}: box={rec['box']} " + " ".join(
                    f"{t}={rec[t]['label']}" + (f" ({rec[t]['prob']:.2f})" if "prob" in rec[t] else "")
                    for t in predictor.tasks))
                lines.append(json.dumps({"image": str(path or name), "face": i, **rec}))
            n_faces += len(records)
        if a.json:
            tmp = Path(a.json).with_suffix(Path(a.json).suffix + ".tmp")
            tmp.write_text("".join(line + "\n" for line in lines))
            tmp.replace(a.json)
            print(f"{len(lines)} face records: {Path(a.json).resolve()}")
    except (DemoError, FaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions: one line, no traceback
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
