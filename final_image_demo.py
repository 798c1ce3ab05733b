"""Detect every face in an image (or a folder of images), predict each attribute the model has, draw them.

    python final_image_demo.py                              # shipped model, built-in sample photo
    python final_image_demo.py --image group.jpg --json faces.jsonl
    python final_image_demo.py --image photos/ --output annotated/   # a folder: faces.jsonl beside the pictures
    python final_image_demo.py --image photos/ --run latest # newest run under runs/ (loads TensorFlow)

The shipped model runs through LiteRT and faces come from BlazeFace: no TensorFlow is imported unless
--run or a .keras / .hdf5 --weights is given.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
import utils  # noqa: E402,F401  (TensorFlow environment switches, for the --run path)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def natural_key(path: Path):
    """File names in the order a person reads them: img2 before img10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def inputs(image: str | None) -> list:
    """[(name, path or None)]: one image, every image of a folder (natural order), or the built-in photo."""
    from utils.demo import DemoError

    if image is None:
        return [("astronaut", None)]
    path = Path(image)
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not files:
            raise DemoError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return [(f.stem, f) for f in files]
    if not path.is_file():
        raise DemoError(f"--image {image}: no such file or folder")
    return [(path.stem, path)]


def parser() -> argparse.ArgumentParser:
    from utils.demo import add_model_flags

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--image", default=None, help="image file or folder (none: the built-in sample photograph)")
    add_model_flags(p, detector="blazeface_refine")  # a still image: steadier keypoints over speed
    p.add_argument("--output", default=None,
                   help="annotated image, or a folder for a folder of images (none: demo_output/)")
    p.add_argument("--json", default=None,
                   help="one JSON record per face (JSON Lines) to this file (a folder run writes "
                        "<output folder>/faces.jsonl when not given)")
    p.add_argument("--tasks", nargs="*", default=None, help="subset of the model's tasks to show (none: all)")
    p.add_argument("--max_inline", type=int, default=8,
                   help="more faces than this get numbered boxes and a legend beside the picture")
    return p


def summary(rec: dict, tasks: list) -> str:
    parts = []
    for t in tasks:
        ans = rec[t]
        parts.append(f"{t} {ans['label']}" + (f" ({ans['prob']:.2f})" if "prob" in ans else ""))
    return ", ".join(parts)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    from utils.demo import DemoError
    from utils.faces import FaceError

    n_faces = 0
    try:  # every flag is checked before a model loads
        items = inputs(a.image)
        folder_run = len(items) > 1 or (a.image is not None and Path(a.image).is_dir())
        out_dir = Path(a.output) if a.output and folder_run else Path("demo_output")
        json_path = Path(a.json) if a.json else (out_dir / "faces.jsonl" if folder_run else None)
        if json_path is not None and a.json and not json_path.resolve().parent.is_dir():
            raise DemoError(f"--json {a.json}: folder {json_path.resolve().parent} does not exist")
        if a.output and not folder_run and not Path(a.output).resolve().parent.is_dir():
            raise DemoError(f"--output {a.output}: folder {Path(a.output).resolve().parent} does not exist")
        if a.min_face < 8:
            raise DemoError(f"--min_face {a.min_face}: faces smaller than 8 pixels cannot be read")
        import cv2

        if a.output and not folder_run and not cv2.haveImageWriter(a.output):
            raise DemoError(f"--output {a.output}: OpenCV writes no image with this suffix; name a file such as "
                            "annotated.jpg or .png")

        from utils.demo import apply_model_flags, face_records, load_predictor, read_image
        from utils.drawing import draw
        from utils.faces import detect, make_detector

        detector = make_detector(a.detector, a.min_face)
        predictor = apply_model_flags(load_predictor(a.run, a.weights, a.runs_dir), a)
        if a.tasks:
            unknown = set(a.tasks) - set(predictor.tasks)
            if unknown:
                raise DemoError(f"the model has no task {sorted(unknown)}; it predicts {predictor.tasks}")
            predictor.tasks = [t for t in predictor.tasks if t in a.tasks]
        print(f"model: {predictor.source} (tasks: {', '.join(predictor.tasks)}); detector: {a.detector}")
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
            out = Path(a.output) if a.output and not folder_run else out_dir / f"{name}_annotated.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out), cv2.cvtColor(draw(rgb, records, max_inline=a.max_inline), cv2.COLOR_RGB2BGR)):
                raise DemoError(f"cannot write {out} (unknown image suffix or no permission?)")
            print(f"{path or name}: {len(records) or 'no'} face{'s' if len(records) != 1 else ''}; "
                  f"annotated image: {out.resolve()}")
            for i, rec in enumerate(records, start=1):
                print(f"  face {i}: {summary(rec, predictor.tasks)}")
                lines.append(json.dumps({"image": str(path or name), "face": i, **rec}))
            n_faces += len(records)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = json_path.with_suffix(json_path.suffix + ".tmp")
            tmp.write_text("".join(line + "\n" for line in lines))
            tmp.replace(json_path)
            print(f"{len(lines)} face records: {json_path.resolve()}")
    except (DemoError, FaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions: one line, no traceback
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
