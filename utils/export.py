"""Export a run or the shipped model to SavedModel, TFLite (float32 and int8) and ONNX.

    python utils/export.py --model pretrained/four_tasks_mini_xception_64px/model.keras --out exported/
    python utils/export.py --run runs/CONFUSION_EPGA_multitask/<run> --formats savedmodel tflite

Every export takes the model's own input (a face crop of the model's size: grey 64 x 64 for the shipped
model, pixels 0..255, as ``utils.demo.Predictor.prepare`` makes it) and contains the model's
preprocessing layer, so it returns the same per-task probabilities as the Keras model; each export is
checked against the Keras model on the given images before the command reports success. The int8
TFLite model is calibrated on those images (``--calibration``, default: a generated set when none).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.runtime import SHIPPED_MODEL, RuntimeError_, TFLiteRunner, match_outputs  # noqa: E402

FORMATS = ("savedmodel", "tflite", "tflite_int8", "onnx")


class ExportError(Exception):
    """An export that cannot be made or does not match the Keras model; one line for the user."""


def _signature(model):
    import tensorflow as tf

    _, h, w, c = model.input.shape
    return [tf.TensorSpec((None, h, w, c), tf.float32, name="image")]


def export_savedmodel(model, out: Path) -> Path:
    path = out / "savedmodel"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def export_tflite(model, out: Path, calibration: np.ndarray | None = None) -> Path:
    """Float32 TFLite, or int8 weights and activations (float input/output) when ``calibration`` is given.

    Converted from the SavedModel, whose variables are frozen into constants (the int8 calibrator
    cannot read resource variables of a concrete function).
    """
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:  # a fresh SavedModel: never a stale one left in ``out``
        converter = tf.lite.TFLiteConverter.from_saved_model(str(export_savedmodel(model, Path(tmp))))
        return _convert(converter, out, calibration)


def _convert(converter, out: Path, calibration) -> Path:
    import tensorflow as tf

    name = "model.tflite"
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for x in calibration:
                yield [x[None].astype(np.float32)]

        converter.representative_dataset = representative
        name = "model_int8.tflite"
    path = out / name
    path.write_bytes(converter.convert())
    return path


def export_onnx(model, out: Path) -> Path:
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx (pip install tf2onnx onnxruntime)") from None
    import tensorflow as tf

    path = out / "model.onnx"
    fn = tf.function(lambda x: model(x, training=False))
    tf2onnx.convert.from_function(fn, input_signature=_signature(model), opset=17, output_path=str(path))
    return path


def run_tflite(path: Path, images: np.ndarray, classes: dict) -> dict:
    return TFLiteRunner(path, classes)(images)


def run_onnx(path: Path, images: np.ndarray) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})
    return dict(zip(names, values))


def run_savedmodel(path: Path, images: np.ndarray) -> dict:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return {k: v.numpy() for k, v in loaded.serve(tf.constant(images, tf.float32)).items()}


def export(model, out: Path, formats, images: np.ndarray, atol: float = 1e-4) -> dict:
    """Write the exports and return ``{format: {"path", "max_abs_diff", "agreement"}}`` against Keras."""
    out.mkdir(parents=True, exist_ok=True)
    reference = {k: np.asarray(v) for k, v in model(images.astype(np.float32), training=False).items()}
    classes = {k: v.shape[-1] for k, v in reference.items()}
    report = {}
    for fmt in formats:
        if fmt == "savedmodel":
            path = export_savedmodel(model, out)
            got = run_savedmodel(path, images)
        elif fmt == "tflite":
            path = export_tflite(model, out)
            got = run_tflite(path, images, classes)
        elif fmt == "tflite_int8":
            path = export_tflite(model, out, calibration=images)
            got = run_tflite(path, images, classes)
        elif fmt == "onnx":
            path = export_onnx(model, out)
            got = run_onnx(path, images)
        else:
            raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        got = match_outputs(classes, got)
        diff = max(float(np.abs(got[k] - reference[k]).max()) for k in reference)
        agree = {k.removesuffix("_prediction"): float((got[k].argmax(1) == reference[k].argmax(1)).mean())
                 for k in reference}
        if fmt != "tflite_int8" and diff > atol:
            raise ExportError(f"{fmt} export differs from the Keras model by {diff:.2e} (> {atol:g})")
        report[fmt] = {"path": str(path), "max_abs_diff": diff, "top1_agreement": agree}
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="run folder (its best.keras)")
    src.add_argument("--model", help=".keras file (default: the shipped model)")
    p.add_argument("--out", default="exported", help="output folder")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    p.add_argument("--calibration", default=None,
                   help="folder of face crops for the checks and int8 calibration (default: generated faces)")
    a = p.parse_args(argv)
    from models import load_model

    path = Path(a.run) / "best.keras" if a.run else Path(a.model or SHIPPED_MODEL)
    if not path.is_file():
        print(f"error: model file not found: {path}", file=sys.stderr)
        return 1
    try:
        model = load_model(path)
    except Exception as exc:  # zip / deserialisation errors come in many types
        print(f"error: {path}: not a loadable Keras model ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
              file=sys.stderr)
        return 1
    images = calibration_images(model, a.calibration)
    try:
        report = export(model, Path(a.out), a.formats, images)
    except (ExportError, RuntimeError_) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only or full output folder: nothing half-written is reported as done
        print(f"error: {exc.filename or a.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for fmt, r in report.items():
        print(f"{fmt:12s} {r['path']}  max |diff| vs Keras {r['max_abs_diff']:.2e}  top-1 agreement "
              + ", ".join(f"{t} {v:.3f}" for t, v in r["top1_agreement"].items()))
    return 0


def calibration_images(model, folder: str | None, n: int = 64) -> np.ndarray:
    """Images at the model's input size: the crops in ``folder``, else generated synthetic faces."""
    import cv2

    _, size, _, channels = model.input.shape
    if folder:
        files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
        if not files:
            raise SystemExit(f"error: no .jpg/.png images in {folder}")
        imgs = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR) for f in files]
    else:
        from utils.synthetic_faces import generate

        imgs = [im for im, _ in generate("toy_emotion", n, seed=0, size=size)]
        imgs = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) if channels == 1 and im.ndim == 3 else im for im in imgs]
    imgs = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in imgs]
    arr = np.stack(imgs).astype(np.float32)
    return arr[..., None] if channels == 1 else arr


if __name__ == "__main__":
    sys.exit(main())
