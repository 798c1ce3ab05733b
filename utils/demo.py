"""Face detection, attribute prediction, drawing and per-face tracking for the demos.

Faces come from ``utils.faces`` (MTCNN with five-landmark alignment by default). Each face is cropped,
aligned, resized and turned grey in OpenCV, and all faces of a frame go through one traced forward
pass; the model's own preprocessing layer does the rest, as in training.
"""
from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from utils.faces import Face, face_crop
from utils.kinds import expected_value, kind_of
from utils.runtime import SHIPPED_MODEL
from utils.tasks import ANGLES, DEFAULT_VOCAB, EMOTION_FERPLUS, TASK_SPECS

TASK_COLOURS = {t.name: t.colour for t in TASK_SPECS.values()}  # in the tasks' order


class DemoError(Exception):
    """A problem with the demo's input (file, camera, weights); one line for the user."""


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
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Predictor:
    """A trained model plus what is needed to read its outputs."""

    model: object
    tasks: list
    class_names: dict
    size: int
    channels: int
    source: str
    margin: float = 0.15
    tflite: Path | None = None  # a float TFLite export of the same model, used for speed when present

    def prepare(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The model's input for one face, in OpenCV: aligned crop, grey for one-channel models."""
        crop = face_crop(rgb, face, self.size, self.margin)
        if self.channels == 1:
            return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None]
        return crop

    def predict(self, inputs: list) -> list:
        """One batched forward pass for prepared inputs; returns ``[{task: probabilities}]``.

        A traced forward function instead of ``model.predict``, whose per-call set-up costs more
        than the network itself for a few faces; the numbers are the same.
        """
        if not inputs:
            return []
        import tensorflow as tf

        batch = np.stack(inputs).astype(np.float32)
        if self.tflite is not None:
            out = self._tflite_forward(batch)
        else:
            if getattr(self, "_forward", None) is None:
                self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
            out = {k: v.numpy() for k, v in self._forward(batch).items()}
        return [{t: out[f"{t}_prediction"][i] for t in self.tasks} for i in range(len(inputs))]

    def _tflite_forward(self, batch: np.ndarray) -> dict:
        """The TFLite export beside the model (equal to Keras within 1e-4, tests/test_export.py):
        a few faces run in about a millisecond instead of a TensorFlow call's overhead."""
        if getattr(self, "_runner", None) is None:
            from utils.runtime import TFLiteRunner

            self._runner = TFLiteRunner(self.tflite, {k: v.shape[-1] for k, v in self.model.output.items()})
        return self._runner(batch)


def class_names_for(task: str, n: int) -> list:
    if task == "emotion" and n == 8:
        return list(EMOTION_FERPLUS)
    if task == "pose" and n <= 3:  # a regression head: the angles in degrees
        return list(ANGLES[:n])
    vocab = DEFAULT_VOCAB[task]
    return list(vocab) if len(vocab) == n else [str(i) for i in range(n)]


def newest_run(runs_dir: Path) -> Path | None:
    """The most recently written ``best.keras`` under ``runs_dir`` (its run folder)."""
    found = sorted(Path(runs_dir).glob("**/best.keras"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def _load_keras(path: str):
    from models import load_model

    try:
        return load_model(path)
    except Exception as exc:  # zip, h5 and deserialisation errors come in many types
        raise DemoError(f"{path}: not a loadable Keras model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else 'no details'})") from None


def load_predictor(run: str | None = None, weights: str | None = None, runs_dir: str = "runs") -> Predictor:
    """The shipped model by default; ``run`` a run folder (its best.keras) or ``latest`` (the newest
    run under ``runs_dir``); ``weights`` a .keras file or a released mini-Xception .hdf5."""
    config = {}
    if weights is None and run is None:
        weights = str(SHIPPED_MODEL)
        if not SHIPPED_MODEL.is_file():
            raise DemoError(f"the shipped model {SHIPPED_MODEL} is missing (a partial clone?); "
                            f"pass --run latest or --weights FILE")
        config = json.loads((SHIPPED_MODEL.parent / "config.json").read_text())
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
        if (run_dir / "config.json").is_file():
            config = json.loads((run_dir / "config.json").read_text())
    if not Path(weights).is_file():
        raise DemoError(f"weights file not found: {weights}")
    if weights.endswith((".h5", ".hdf5")):
        from models import ModelSpec, WeightsError, build_net

        try:
            model = build_net(ModelSpec("mini_xception", {"emotion": 7}, weights=weights))
        except (WeightsError, OSError, KeyError) as exc:
            raise DemoError(f"{weights}: not a released mini-Xception weights file ({exc})") from None
    else:
        model = _load_keras(weights)
    outputs = model.output if isinstance(model.output, dict) else {}
    tasks = [k.removesuffix("_prediction") for k in outputs if k.removesuffix("_prediction") in DEFAULT_VOCAB]
    if not tasks:
        raise DemoError(f"{weights}: the model has no emotion/pose/gender/age heads (outputs "
                        f"'<task>_prediction'); is it a model of this project?")
    names = config.get("class_names") or {}
    shapes = {t: int(model.get_layer(f"{t}_prediction").output.shape[-1]) for t in tasks}
    class_names = {t: names.get(t) or class_names_for(t, shapes[t]) for t in tasks}
    _, size, _, channels = model.input.shape
    tflite = Path(weights).with_suffix(".tflite")
    return Predictor(model, tasks, class_names, int(size), int(channels), weights,
                     tflite=tflite if tflite.is_file() else None)


# ------------------------------------------------------------------------------------ records, drawing
# Arrow along the image x axis per yaw bin. Pointing'04's convention (the shipped model's pose data):
# a positive pan turns the face towards the image's left.
YAW_ARROWS = {"frontal": 0.0, "yaw +10..+60": -0.5, "yaw -60..-10": 0.5, "yaw <= -60": 1.0, "yaw >= +60": -1.0}


def face_records(predictor: Predictor, rgb: np.ndarray, faces: list) -> list:
    """One record per face: box, landmarks, and per task the label, its probability and all probabilities."""
    probs = predictor.predict([predictor.prepare(rgb, f) for f in faces])
    records = []
    for face, p in zip(faces, probs):
        rec = {"box": [int(v) for v in face.box], "score": round(float(face.score), 4)}
        if face.landmarks is not None:
            rec["landmarks"] = [[round(float(v), 1) for v in pt] for pt in face.landmarks]
        for t, v in p.items():
            rec[t] = kind_of(predictor.class_names[t]).decode(predictor.class_names[t], v)
        records.append(rec)
    return records


def describe(rec: dict, task: str, labels_key: str = "label") -> str:
    """One line of text for a task of a record (emotion with its confidence)."""
    value = rec[task].get(labels_key, rec[task]["label"])
    if task == "emotion" and labels_key == "label":
        return f"{value} {rec[task]['prob']:.0%}"
    return value


def draw(rgb: np.ndarray, records: list, labels_key: str = "label") -> np.ndarray:
    """Boxes, a yaw arrow and one text line per task, scaled to the image so they stay readable."""
    out = rgb.copy()
    H, W = out.shape[:2]
    scale = max(0.4, min(W, H) / 900)
    thick = max(1, int(round(scale * 2)))
    for rec in records:
        x, y, w, h = rec["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thick + 1)
        if "pose" in rec:  # arrow from the face centre in the direction the head is turned
            label = rec["pose"].get(labels_key, rec["pose"]["label"])
            dx, dy = YAW_ARROWS.get(label), 0.0
            angles = rec["pose"].get("smoothed_degrees" if labels_key == "smoothed" else "degrees")
            if angles:  # degrees: Pointing'04's signs (positive yaw turns left, positive pitch looks up)
                dx = -float(np.sin(np.radians(angles["yaw"])))
                dy = -float(np.sin(np.radians(angles.get("pitch", 0.0))))
            if dx is not None:
                c = (x + w // 2, y + h // 2)
                tip = (int(c[0] + dx * w * 0.6), int(c[1] + dy * h * 0.6))
                if abs(dx) + abs(dy) > 0.05:
                    cv2.arrowedLine(out, c, tip, TASK_COLOURS["pose"], thick + 1, cv2.LINE_AA, tipLength=0.3)
                else:
                    cv2.circle(out, c, max(3, thick * 2), TASK_COLOURS["pose"], -1, cv2.LINE_AA)
        lines = [(t, f"{t}: {describe(rec, t, labels_key)}") for t in TASK_COLOURS if t in rec]
        (tw, th), base = cv2.getTextSize("Mg", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        line_h = th + base + 4
        top = y - line_h * len(lines) - 2
        if top < 0:
            top = min(H - line_h * len(lines), y + h + 2)
        for k, (t, text) in enumerate(lines):
            (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            y0 = max(0, top + k * line_h)
            x0 = min(max(0, x), max(0, W - tw - 4))
            cv2.rectangle(out, (x0, y0), (x0 + tw + 4, y0 + line_h), (0, 0, 0), -1)
            cv2.putText(out, text, (x0 + 2, y0 + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, TASK_COLOURS[t],
                        thick, cv2.LINE_AA)
    return out


# ------------------------------------------------------------------------------------ tracking
def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    id: int
    box: tuple
    missed: int = 0
    history: dict = field(default_factory=dict)  # task -> deque of probability vectors


class FaceTracker:
    """Greedy IoU tracker; each track keeps its own smoothing window per task."""

    def __init__(self, window: int = 10, min_iou: float = 0.3, max_missed: int = 10, smooth: str = "mode"):
        self.window, self.min_iou, self.max_missed, self.smooth = window, min_iou, max_missed, smooth
        self.tracks, self.next_id = [], 0

    def update(self, records: list, class_names: dict) -> list:
        """Assign a track to every record and replace its labels with the smoothed ones."""
        pairs = sorted(((iou(t.box, r["box"]), ti, ri) for ti, t in enumerate(self.tracks)
                        for ri, r in enumerate(records)), reverse=True)
        used_t, used_r, match = set(), set(), {}
        for score, ti, ri in pairs:
            if score >= self.min_iou and ti not in used_t and ri not in used_r:
                used_t.add(ti)
                used_r.add(ri)
                match[ri] = self.tracks[ti]
        for ri, rec in enumerate(records):
            track = match.get(ri)
            if track is None:
                track = Track(self.next_id, tuple(rec["box"]))
                self.next_id += 1
                self.tracks.append(track)
            track.box, track.missed = tuple(rec["box"]), 0
            rec["track"] = track.id
            for t, names in class_names.items():
                if t not in rec:
                    continue
                hist = track.history.setdefault(t, deque(maxlen=self.window))
                if "degrees" in rec[t]:  # mean angles over the window
                    hist.append(np.array([rec[t]["degrees"][n] for n in names]))
                    mean = dict(zip(names, np.mean(hist, axis=0).round(1).tolist()))
                    rec[t]["smoothed_degrees"] = mean
                    rec[t]["smoothed"] = ", ".join(f"{a} {v:+.0f}" for a, v in mean.items())
                    continue
                hist.append(np.array([rec[t]["probs"][n] for n in names]))
                if "years" in rec[t]:  # mean of the expected ages over the window
                    mean = float(expected_value(np.stack(hist)).mean())
                    rec[t]["smoothed"] = f"{mean:.0f} years"
                else:
                    rec[t]["smoothed"] = names[self._smoothed_index(hist)]
        for track in self.tracks:
            if track.id not in {r["track"] for r in records}:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return records

    def _smoothed_index(self, hist) -> int:
        if self.smooth == "mean":
            return int(np.mean(hist, axis=0).argmax())
        votes = Counter(int(p.argmax()) for p in hist)
        best = max(votes.values())
        # ties go to the most recent of the tied labels (deterministic, unlike statistics.mode < 3.8)
        return next(int(p.argmax()) for p in reversed(hist) if votes[int(p.argmax())] == best)


