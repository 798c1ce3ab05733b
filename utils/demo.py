"""Face detection, attribute prediction, drawing and per-face tracking for the demos.

Predictions use ``utils.pipelines.prepare_image`` (the function training uses) and the model's own
preprocessing layer, so a demo's numbers equal ``model.predict`` on the same crop.
"""
from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from utils.evaluation import expected_value
from utils.tasks import DEFAULT_VOCAB, EMOTION_FERPLUS

TASK_COLOURS = {"emotion": (255, 80, 80), "pose": (255, 220, 0), "gender": (80, 220, 80), "age": (90, 160, 255)}


class DemoError(Exception):
    """A problem with the demo's input (file, camera, weights); one line for the user."""


# ------------------------------------------------------------------------------------ detection
class FaceDetector:
    """Frontal faces in an RGB image as ``(x, y, w, h)`` boxes: dlib's HOG detector or a Haar cascade.

    ``min_face``: smallest face side in pixels worth finding; smaller values search more scales
    (Haar) or upsample the image (dlib finds faces from about 80 px, 40 px with one upsampling).
    """

    def __init__(self, kind: str = "dlib", min_face: int = 48):
        self.kind, self.min_face = kind, int(min_face)
        upsample = 1 if self.min_face < 80 else 0
        if kind == "dlib":
            try:
                import dlib
            except ImportError:
                raise DemoError("dlib is not installed (pip install dlib-bin), or use --detector haar") from None
            self._dlib, self.upsample = dlib.get_frontal_face_detector(), upsample
        elif kind == "haar":
            path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
            self._haar = cv2.CascadeClassifier(str(path))
            if self._haar.empty():
                raise DemoError(f"cannot load the Haar cascade {path}; use --detector dlib")
        else:
            raise DemoError(f"unknown detector {kind!r} (dlib or haar)")

    def __call__(self, rgb: np.ndarray) -> list:
        if self.kind == "dlib":
            rects = self._dlib(np.ascontiguousarray(rgb), self.upsample)
            boxes = [(r.left(), r.top(), r.width(), r.height()) for r in rects]
        else:
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            boxes = [tuple(int(v) for v in b) for b in self._haar.detectMultiScale(
                grey, 1.1, 5, minSize=(self.min_face, self.min_face))]
        h, w = rgb.shape[:2]
        clipped = []
        for x, y, bw, bh in boxes:
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
            if x1 - x0 > 4 and y1 - y0 > 4:
                clipped.append((x0, y0, x1 - x0, y1 - y0))
        return sorted(clipped)


def crop_face(rgb: np.ndarray, box, margin: float) -> np.ndarray:
    """The box enlarged by ``margin`` x its size on each side, clipped to the image."""
    x, y, w, h = box
    H, W = rgb.shape[:2]
    x0, y0 = max(0, int(round(x - margin * w))), max(0, int(round(y - margin * h)))
    x1, y1 = min(W, int(round(x + w + margin * w))), min(H, int(round(y + h + margin * h)))
    return rgb[y0:y1, x0:x1]


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
    """A trained model plus what is needed to read its outputs."""

    model: object
    tasks: list
    class_names: dict
    size: int
    channels: int
    source: str
    margin: float = 0.15

    def predict(self, crops: list) -> list:
        """One batched forward pass for all crops; returns ``[{task: probabilities}]``.

        A traced forward function instead of ``model.predict``, whose per-call set-up costs more
        than the network itself for a few faces; the numbers are the same.
        """
        if not crops:
            return []
        import tensorflow as tf

        from utils.pipelines import prepare_image

        if getattr(self, "_forward", None) is None:
            self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        batch = tf.stack([prepare_image(c, self.size, self.channels) for c in crops])
        out = {k: v.numpy() for k, v in self._forward(batch).items()}
        return [{t: out[f"{t}_prediction"][i] for t in self.tasks} for i in range(len(crops))]


def class_names_for(task: str, n: int) -> list:
    if task == "emotion" and n == 8:
        return list(EMOTION_FERPLUS)
    vocab = DEFAULT_VOCAB[task]
    return list(vocab) if len(vocab) == n else [str(i) for i in range(n)]


def newest_run(runs_dir: Path) -> Path | None:
    """The most recently written ``best.keras`` under ``runs_dir`` (its run folder)."""
    found = sorted(Path(runs_dir).glob("**/best.keras"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def load_predictor(run: str | None = None, weights: str | None = None, runs_dir: str = "runs") -> Predictor:
    """From ``--run`` (its best.keras), ``--weights`` (.keras, or a released mini-Xception .hdf5), or
    the newest run in ``runs_dir``."""
    import keras

    import models  # noqa: F401  (registers the custom layers)

    config = {}
    if weights is None:
        run_dir = Path(run) if run else newest_run(Path(runs_dir))
        if run_dir is None:
            raise DemoError(
                f"no trained model found under {runs_dir}/; train one first, e.g. `python "
                f"CONFUSION_EPGA_multitask.py --dataset_emotion=toy_emotion --dataset_pose=toy_pose "
                f"--dataset_gender_age=toy_gender_age --epoch=10 --is_naive=True` (README, Training), "
                f"or pass --weights FILE")
        weights = str(run_dir / "best.keras")
        if not Path(weights).is_file():
            raise DemoError(f"{run_dir} has no best.keras (is it a run folder?)")
        if (run_dir / "config.json").is_file():
            config = json.loads((run_dir / "config.json").read_text())
    if not Path(weights).is_file():
        raise DemoError(f"weights file not found: {weights}")
    if weights.endswith((".h5", ".hdf5")):
        from models import ModelSpec, build_net

        model = build_net(ModelSpec("mini_xception", {"emotion": 7}, weights=weights))
    else:
        model = keras.models.load_model(weights, compile=False)
    tasks = [k.removesuffix("_prediction") for k in model.output.keys()] if isinstance(model.output, dict) \
        else [n.removesuffix("_prediction") for n in model.output_names]
    names = config.get("class_names") or {}
    shapes = {t: int(model.get_layer(f"{t}_prediction").output.shape[-1]) for t in tasks}
    class_names = {t: names.get(t) or class_names_for(t, shapes[t]) for t in tasks}
    _, size, _, channels = model.input.shape
    return Predictor(model, tasks, class_names, int(size), int(channels), weights)


# ------------------------------------------------------------------------------------ records, drawing
def face_records(predictor: Predictor, rgb: np.ndarray, boxes: list) -> list:
    probs = predictor.predict([crop_face(rgb, b, predictor.margin) for b in boxes])
    records = []
    for box, p in zip(boxes, probs):
        rec = {"box": [int(v) for v in box]}
        for t, v in p.items():
            i = int(np.argmax(v))
            rec[t] = {"label": predictor.class_names[t][i], "prob": float(v[i]),
                      "probs": {n: round(float(q), 4) for n, q in zip(predictor.class_names[t], v)}}
            if len(v) == 101:  # age in years: the expected value, not the most likely bin
                rec[t]["years"] = float(expected_value(v[None])[0])
                rec[t]["label"] = f"{rec[t]['years']:.0f} years"
        records.append(rec)
    return records


def draw(rgb: np.ndarray, records: list, labels_key: str = "label") -> np.ndarray:
    """Boxes and one text line per task, scaled to the image so they stay readable at any size."""
    out = rgb.copy()
    H, W = out.shape[:2]
    scale = max(0.35, min(W, H) / 900)
    thick = max(1, int(round(scale * 2)))
    for rec in records:
        x, y, w, h = rec["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thick + 1)
        lines = [(t, f"{t}: {rec[t][labels_key]}") for t in TASK_COLOURS if t in rec]
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


