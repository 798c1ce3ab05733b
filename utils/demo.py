"""Face attributes for the demos and for ``analyze``: predictor loading, per-face records.

The shipped model runs as its TFLite export through LiteRT (``utils/runtime.py``), faces come from
BlazeFace by default (``utils/faces.py``), drawing is OpenCV (``utils/drawing.py``): nothing here
imports TensorFlow unless a ``.keras`` model or a run folder is named. Each face is aligned, resized
and turned grey in OpenCV, and all faces of a frame go through one forward pass; the model's own
preprocessing layer does the rest, as in training.

    from utils.demo import analyze
    for face in analyze("group.jpg"):
        print(face["box"], face["emotion"]["label"], face["age"]["label"])
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from utils.drawing import draw, reading_order  # noqa: F401  (draw: the demos' drawing, re-exported)
from utils.faces import Face, face_crop
from utils.kinds import kind_of
from utils.runtime import SHIPPED_MODEL
from utils.tasks import ANGLES, DEFAULT_VOCAB, EMOTION_FERPLUS
from utils.tracking import FaceTracker  # noqa: F401  (re-exported for the video demo)
from utils.views import VIEW_FLAGS


class DemoError(Exception):
    """A problem with the demo's input (file, camera, weights); one line for the user."""


# ------------------------------------------------------------------------------------ flags
DETECTOR_NAMES = ("blazeface", "blazeface_refine", "mtcnn", "dlib", "haar")


def add_model_flags(p, detector: str = "blazeface") -> None:
    """The flags both demos share: which model, which detector (``detector``: the default), how faces are
    cropped."""
    p.add_argument("--run", default=None, help="run folder (its best.keras), or 'latest' for the newest run")
    p.add_argument("--weights", default=None, help=".tflite (with its config.json), .keras, or a released "
                   "mini-Xception .hdf5 (none: the shipped model)")
    p.add_argument("--runs_dir", default="runs", help="where --run latest looks")
    p.add_argument("--detector", default=detector, choices=DETECTOR_NAMES,
                   help="face detector (blazeface_refine reads each face's keypoints again at canonical scales: "
                        "steadier answers, a third of the speed)")
    p.add_argument("--min_face", type=int, default=40, help="smallest face side (pixels) to look for")
    p.add_argument("--margin", type=float, default=0.15, help="border around boxes of faces without landmarks")
    p.add_argument("--views", default="model", choices=VIEW_FLAGS,
                   help="test-time views: 'model' averages each head over the views its config.json names (the "
                        "model card's numbers), 'flip' over the face and its mirror image only (faster), 'none' "
                        "one pass")


def apply_model_flags(predictor: Predictor, a) -> Predictor:
    """``predictor`` with the shared flags' crop margin and test-time views (``add_model_flags``)."""
    predictor.margin = a.margin
    predictor.flip = a.views != "none"
    if a.views == "flip":
        predictor.views = {}
    return predictor


# ------------------------------------------------------------------------------------ images
def read_image(path: str) -> np.ndarray:
    """RGB uint8 from any file OpenCV reads, with EXIF rotation applied, alpha dropped, grey expanded."""
    if not Path(path).is_file():
        raise DemoError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation, drops alpha, expands grey
    if img is None:
        raise DemoError(f"cannot decode image: {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------ models
@dataclass
class Predictor:
    """A trained model behind one batched forward function, plus what is needed to read its outputs.

    ``temperatures``: task -> T of temperature scaling fitted on validation (stored in the model's
    config.json); probabilities are ``softmax(log p / T)``, so that a printed 0.9 is right about 9
    times in 10. ``views``: task -> the arm of test-time views its head averages over with ``flip``
    (config.json ``test_views``; a head not named averages the face and its mirror image).
    """

    forward: object  # (N, size, size, channels) float32 pixels 0..255 -> {"<task>_prediction": array}
    tasks: list
    class_names: dict
    size: int
    channels: int
    source: str
    margin: float = 0.15
    temperatures: dict = field(default_factory=dict)
    flip: bool = True  # test-time flip: average each face's prediction with its mirror image's
    views: dict = field(default_factory=dict)  # task -> arm of utils/views.py (config.json test_views)

    def prepare(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The model's input for one face, in OpenCV: aligned crop, grey for one-channel models."""
        crop = face_crop(rgb, face, self.size, self.margin)
        if self.channels == 1:
            return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None]
        return crop

    def predict(self, inputs: list) -> list:
        """One batched forward pass for prepared inputs; returns ``[{task: probabilities}]``."""
        if not inputs:
            return []
        batch = np.stack(inputs).astype(np.float32)
        if self.flip:  # each head's test-time views, each with its mirror image (utils/views.py)
            from utils.tasks import flip_permutations, unflip
            from utils.views import head_arms, per_head, view, views_needed

            arms = head_arms({"test_views": self.views}, self.tasks)
            needed = views_needed(arms)
            x = [view(batch, *v) for v in needed]
            out = self.forward(np.concatenate([y for z in x for y in (z, z[:, :, ::-1])]))
            n, perms, outputs = len(batch), flip_permutations(self.class_names), {}
            for k, v in enumerate(needed):  # the mirror image's outputs mapped back (yaw bins swap sides)
                part = {t: out[f"{t}_prediction"][2 * k * n:(2 * k + 2) * n] for t in self.tasks}
                outputs[v] = ({t: p[:n] for t, p in part.items()},
                              {t: unflip(p[n:], perms.get(t)) for t, p in part.items()})
            out = {f"{t}_prediction": v.mean(0) for t, v in per_head(outputs, arms).items()}
        else:
            out = self.forward(batch)
        per_task = {t: calibrated(out[f"{t}_prediction"], self.temperatures.get(t)) for t in self.tasks}
        return [{t: per_task[t][i] for t in self.tasks} for i in range(len(inputs))]


def calibrated(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log p / T)`` (rows of a softmax head; others unchanged)."""
    probs = np.asarray(probs, np.float64)
    if not temperature or temperature == 1.0 or probs.ndim != 2 or probs.shape[1] < 2:
        return probs
    z = np.log(np.clip(probs, 1e-12, 1.0)) / float(temperature)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def class_names_for(task: str, n: int) -> list:
    if task == "emotion" and n == 8:
        return list(EMOTION_FERPLUS)
    if task == "pose" and n <= 3:  # a regression head: the angles in degrees
        return list(ANGLES[:n])
    vocab = DEFAULT_VOCAB.get(task, ())
    return list(vocab) if len(vocab) == n else [str(i) for i in range(n)]


def newest_run(runs_dir: Path) -> Path | None:
    """The most recently written ``best.keras`` under ``runs_dir`` (its run folder)."""
    found = sorted(Path(runs_dir).glob("**/best.keras"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DemoError(f"{path}: not a readable config.json") from None


def _keras_forward(path: str):
    """(forward, output sizes, input shape) of a .keras model of this project (imports TensorFlow)."""
    from models import import_tensorflow_quietly, load_model

    tf = import_tensorflow_quietly()
    if Path(path).is_file() and not Path(path).read_bytes()[:2] == b"PK":
        raise DemoError(f"{path}: not a .keras model file (a .keras file is a zip archive)")
    try:
        model = load_model(path)
    except Exception as exc:  # zip, h5 and deserialisation errors come in many types
        raise DemoError(f"{path}: not a loadable Keras model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else 'no details'})") from None
    return _from_keras(model, path, tf)


def _from_keras(model, path, tf):
    if not isinstance(getattr(model, "output", None), dict):
        raise DemoError(f"{path}: the model has no emotion/pose/gender/age heads (outputs '<task>_prediction'); "
                        f"is it a model of this project?")
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    sizes = {k: int(v.shape[-1]) for k, v in model.output.items()}
    return (lambda batch: {k: v.numpy() for k, v in fn(batch).items()}), sizes, tuple(model.input_shape)


def _released_forward(path: str):
    from models import ModelSpec, WeightsError, build_net, import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    try:
        model = build_net(ModelSpec("mini_xception", {"emotion": 7}, weights=path))
    except (WeightsError, OSError, KeyError) as exc:
        raise DemoError(f"{path}: not a released mini-Xception weights file ({exc})") from None
    return _from_keras(model, path, tf)


def _tflite_forward(path: Path, config: dict):
    from utils.runtime import RuntimeError_, TFLiteRunner

    names = config.get("class_names") or {}
    if not names:
        raise DemoError(f"{path}: a .tflite model is read with its run's config.json beside it (class names)")
    sizes = {f"{t}_prediction": len(v) for t, v in names.items()}
    try:
        runner = TFLiteRunner(path, sizes)
    except RuntimeError_ as exc:
        raise DemoError(str(exc)) from None
    return runner, sizes, runner.input_shape


def load_predictor(run: str | None = None, weights: str | None = None, runs_dir: str = "runs") -> Predictor:
    """The shipped model (its TFLite export, no TensorFlow) by default; ``run`` a run folder (its
    best.keras) or ``latest`` (the newest run under ``runs_dir``); ``weights`` a .keras, .tflite or a
    released mini-Xception .hdf5 file."""
    if weights is None and run is None:
        weights = str(SHIPPED_MODEL.with_suffix(".tflite"))
        if not Path(weights).is_file():
            raise DemoError(f"the shipped model {weights} is missing (a partial clone?); pass --run latest or "
                            f"--weights FILE")
    elif weights is None:
        run_dir = newest_run(Path(runs_dir)) if run == "latest" else Path(run)
        if run_dir is None:
            raise DemoError(
                f"no trained run under {Path(runs_dir).resolve()}/; train one first, e.g. `python "
                f"CONFUSION_EPGA_multitask.py --dataset_emotion=toy_emotion --dataset_pose=toy_pose "
                f"--dataset_gender_age=toy_gender_age --epoch=10 --is_naive=True`, or leave out --run "
                f"to use the shipped model")
        weights = str(run_dir / "best.keras")
        if not Path(weights).is_file():
            raise DemoError(f"{run_dir} has no best.keras (is it a run folder?)")
    if not Path(weights).is_file():
        raise DemoError(f"weights file not found: {weights}")
    config = _read_config(Path(weights).with_name("config.json"))
    suffix = Path(weights).suffix.lower()
    if suffix == ".tflite":
        forward, sizes, shape = _tflite_forward(Path(weights), config)
    elif suffix in (".h5", ".hdf5"):
        forward, sizes, shape = _released_forward(weights)
    else:
        forward, sizes, shape = _keras_forward(weights)
    tasks = [k.removesuffix("_prediction") for k in sizes if k.removesuffix("_prediction") in DEFAULT_VOCAB]
    if not tasks:
        raise DemoError(f"{weights}: the model has no emotion/pose/gender/age heads (outputs "
                        f"'<task>_prediction'); is it a model of this project?")
    names = config.get("class_names") or {}
    class_names = {t: names.get(t) or class_names_for(t, sizes[f"{t}_prediction"]) for t in tasks}
    from utils.views import head_arms

    try:
        views = head_arms(config, tasks)
    except ValueError as exc:
        raise DemoError(f"{Path(weights).with_name('config.json')}: {exc}") from None
    return Predictor(forward, tasks, class_names, int(shape[1]), int(shape[3]), weights,
                     temperatures=config.get("temperatures", {}), views=views)


# ------------------------------------------------------------------------------------ records
def face_records(predictor: Predictor, rgb: np.ndarray, faces: list) -> list:
    """One record per face, in reading order (row by row, left to right: the order the pictures number
    faces in): box, named landmarks, and per task the answer with its probabilities."""
    faces = [faces[i] for i in reading_order([f.box for f in faces])]
    probs = predictor.predict([predictor.prepare(rgb, f) for f in faces])
    records = []
    for face, p in zip(faces, probs):
        rec = {"box": [int(v) for v in face.box], "score": round(float(face.score), 4)}
        if face.landmarks is not None:
            rec["landmarks"] = {n: [round(float(v), 1) for v in pt] for n, pt in zip(face.landmark_names,
                                                                                      face.landmarks)}
        for t, v in p.items():
            rec[t] = kind_of(predictor.class_names[t]).decode(predictor.class_names[t], v)
        records.append(rec)
    return records


_DEFAULT = {}


def analyze(image, predictor: Predictor | None = None, detector=None, min_face: int = 40) -> list:
    """Every face of ``image`` (a path or an RGB array) with each task's answer and probabilities:
    ``[{"box", "score", "landmarks", "<task>": {"label", "probs", ...}}]``. Defaults: the shipped model
    and BlazeFace with refined keypoints (still images: the steadier answers), loaded once per process."""
    from utils.faces import detect, make_detector

    if predictor is None:
        predictor = _DEFAULT.setdefault("predictor", load_predictor())
    if detector is None:
        detector = _DEFAULT.setdefault(("detector", min_face), make_detector("blazeface_refine", min_face))
    rgb = read_image(str(image)) if isinstance(image, (str, Path)) else np.asarray(image)
    return face_records(predictor, rgb, detect(detector, rgb))
