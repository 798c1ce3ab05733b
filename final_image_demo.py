"""Detect every face in an image, predict each attribute the model has, draw and print them.

    python final_image_demo.py                              # newest run, built-in sample photo
    python final_image_demo.py --image group.jpg --run runs/CONFUSION_EPGA_multitask/<run>
    python final_image_demo.py --image face.jpg --weights emotion_model.hdf5 --json out.json
"""
import argparse
import json
import sys
from pathlib import Path

import utils  # noqa: F401  (TensorFlow environment switches)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default=None, help="input image (default: the built-in sample photograph)")
    p.add_argument("--run", default=None, help="run folder (uses its best.keras)")
    p.add_argument("--weights", default=None, help=".keras model, or a released mini-Xception .hdf5")
    p.add_argument("--runs_dir", default="runs", help="where to look for the newest run")
    p.add_argument("--output", default=None, help="annotated image (default: demo_output/<name>_annotated.jpg)")
    p.add_argument("--json", default=None, help="also write the per-face records to this file")
    p.add_argument("--detector", default="dlib", choices=("dlib", "haar"))
    p.add_argument("--min_face", type=int, default=48, help="smallest face side (pixels) to look for")
    p.add_argument("--tasks", nargs="*", default=None, help="subset of the model's tasks to show")
    p.add_argument("--margin", type=float, default=0.15, help="border added around each face box")
    a = p.parse_args(argv)

    import cv2

    from utils.demo import DemoError, FaceDetector, draw, face_records, load_predictor, read_image

    try:
        predictor = load_predictor(a.run, a.weights, a.runs_dir)
        predictor.margin = a.margin
        if a.tasks:
            unknown = set(a.tasks) - set(predictor.tasks)
            if unknown:
                raise DemoError(f"the model has no task {sorted(unknown)}; it predicts {predictor.tasks}")
            predictor.tasks = [t for t in predictor.tasks if t in a.tasks]
        print(f"model: {predictor.source} (tasks: {', '.join(predictor.tasks)})")
        if a.image:
            rgb, name = read_image(a.image), Path(a.image).stem
        else:
            from utils.demo_samples import sample_photo

            rgb, name = sample_photo(), "astronaut"
            print("no --image given: using the built-in sample photograph (scikit-image astronaut)")
        boxes = FaceDetector(a.detector, a.min_face)(rgb)
        records = face_records(predictor, rgb, boxes)
        out = Path(a.output or Path("demo_output") / f"{name}_annotated.jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), cv2.cvtColor(draw(rgb, records), cv2.COLOR_RGB2BGR)):
            raise DemoError(f"cannot write {out}")
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not records:
        print("no face found in the image")
    for i, rec in enumerate(records):
        print(f"face {i}: box={rec['box']} " + " ".join(f"{t}={rec[t]['label']} ({rec[t]['prob']:.2f})"
                                                         for t in predictor.tasks))
    if a.json:
        Path(a.json).write_text(json.dumps({"image": a.image or "astronaut", "faces": records}, indent=2))
    print(f"annotated image: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
