"""Face detection and landmark alignment shared by the demos and the dataset converters.

Detectors are looked up by name in ``DETECTORS``: ``blazeface`` (MediaPipe's BlazeFace run with LiteRT,
``utils/blazeface.py``; boxes plus eyes, nose tip and mouth centre; the demos' default), ``mtcnn``
(Zhang et al. 2016, the ``mtcnn`` package, whose weights ship inside its wheel; boxes plus five
landmarks), dlib's HOG detector and OpenCV's Haar cascade (boxes only). Every detector returns ``Face``
records; none imports TensorFlow except MTCNN.

Alignment maps the landmarks onto ``TEMPLATE`` with a similarity transform (rotation, uniform
scale, shift; Umeyama 1991 least squares via ``cv2.estimateAffinePartial2D``): MTCNN's five points
onto ``TEMPLATE``, BlazeFace's eyes, nose tip and mouth centre onto ``TEMPLATE4`` (where those points
fall in MTCNN-aligned crops, measured), so both detectors frame a face the same way. ``TEMPLATE`` is the
mean MTCNN landmark layout of FER2013 training faces (120 happy and neutral faces, upsampled 3x before
detection), so an aligned crop is framed like the crops the shipped model was trained on. UTKFace's
aligned chips sit within 10 % of that framing (eyes 0.29 / 0.39 of the side instead of 0.38 / 0.35).
Faces without landmarks (dlib, Haar, profiles MTCNN misses) fall back to the detector box plus a margin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# left eye, right eye, nose tip, left and right mouth corner, as fractions of the crop side
TEMPLATE = np.array([[0.322, 0.389], [0.671, 0.379], [0.504, 0.587], [0.351, 0.763], [0.654, 0.755]],
                    np.float32)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# BlazeFace's left eye, right eye, nose tip and mouth centre where they fall in MTCNN-aligned crops: the
# median over 174 faces (UTKFace chips and FER2013 training faces) on which both detectors found one face.
# Its keypoints sit lower than MTCNN's (the nose tip by 0.03 of the side), so aligning them onto this
# template, not onto MTCNN's points, frames a face the way the training crops were framed.
TEMPLATE4 = np.array([[0.322, 0.397], [0.668, 0.387], [0.504, 0.618], [0.511, 0.774]], np.float32)
LANDMARK_NAMES4 = ("left_eye", "right_eye", "nose", "mouth")


class FaceError(Exception):
    """A detector that cannot be used here; one line for the user."""


@dataclass
class Face:
    box: tuple  # (x, y, w, h) in pixels, clipped to the image
    score: float = 1.0
    landmarks: np.ndarray | None = None  # (5, 2) in LANDMARK_NAMES order, (4, 2) in LANDMARK_NAMES4, or None

    @property
    def landmark_names(self) -> tuple:
        return () if self.landmarks is None else LANDMARK_NAMES if len(self.landmarks) == 5 else LANDMARK_NAMES4


def _clip(boxes_scores, shape) -> list:
    h, w = shape[:2]
    out = []
    for (x, y, bw, bh), score, lm in boxes_scores:
        x0, y0, x1, y1 = max(0, int(x)), max(0, int(y)), min(w, int(x + bw)), min(h, int(y + bh))
        if x1 - x0 > 4 and y1 - y0 > 4:
            out.append(Face((x0, y0, x1 - x0, y1 - y0), float(score), lm))
    return sorted(out, key=lambda f: f.box)


class MtcnnDetector:
    """MTCNN faces with five landmarks; ``min_score`` drops low-confidence boxes (badges, patterns)."""

    def __init__(self, min_face: int = 40, min_score: float = 0.95):
        try:
            from mtcnn import MTCNN
        except ImportError:
            raise FaceError("the mtcnn package is not installed (pip install mtcnn), "
                            "or use --detector dlib") from None
        self.net, self.min_face, self.min_score = MTCNN(), int(min_face), float(min_score)

    def __call__(self, rgb: np.ndarray) -> list:
        # mtcnn 1.0 sizes its image pyramid for its default 20-pixel faces and fails on a larger
        # ``min_face_size``; searching a copy shrunk by 20 / min_face finds the same faces, faster.
        scale = min(1.0, 20.0 / max(self.min_face, 20))
        h, w = rgb.shape[:2]
        small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 24:
            return []
        found = self.net.detect_faces(np.ascontiguousarray(small), min_face_size=20) or []
        rows = []
        for d in found:
            if d["confidence"] < self.min_score:
                continue
            k = d["keypoints"]
            lm = np.array([k[n] for n in LANDMARK_NAMES], np.float32) / scale
            rows.append((tuple(v / scale for v in d["box"]), d["confidence"], lm))
        return _clip(rows, rgb.shape)


class DlibDetector:
    """dlib's HOG frontal-face detector (finds faces from about 80 px, 40 px with one upsampling)."""

    def __init__(self, min_face: int = 40, **_):
        try:
            import dlib
        except ImportError:
            raise FaceError("dlib is not installed (pip install dlib-bin), or use --detector haar") from None
        self.net, self.upsample = dlib.get_frontal_face_detector(), 1 if min_face < 80 else 0

    def __call__(self, rgb: np.ndarray) -> list:
        rects = self.net(np.ascontiguousarray(rgb), self.upsample)
        return _clip([((r.left(), r.top(), r.width(), r.height()), 1.0, None) for r in rects], rgb.shape)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade."""

    def __init__(self, min_face: int = 40, **_):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.net, self.min_face = cv2.CascadeClassifier(str(path)), int(min_face)
        if self.net.empty():
            raise FaceError(f"cannot load the Haar cascade {path}; use --detector mtcnn")

    def __call__(self, rgb: np.ndarray) -> list:
        # The cascade's window is 24 px: faces of at least ``min_face`` are found as well in a copy
        # shrunk so that they measure 30 px, at a fraction of the cost (the pyramid starts smaller).
        scale = min(1.0, 30.0 / max(self.min_face, 30))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        side = max(24, int(round(self.min_face * scale)))
        boxes = self.net.detectMultiScale(grey, 1.1, 5, minSize=(side, side))
        return _clip([(tuple(v / scale for v in b), 1.0, None) for b in boxes], rgb.shape)


class BlazeFaceDetector:
    """BlazeFace (``utils/blazeface.py``): the full-range model, faces from about 20 px in a letterboxed
    copy of the image, joined by the short-range model's faces that overlap none of them (``also``): the
    full-range model misses about one large face in five in a 2 x 2 collage of 200 px UTKFace chips, the
    short-range one none (``benchmarks/consistency.py``). Landmarks: eyes (left and right as they appear
    in the image), nose tip, mouth centre.

    ``refine``: the keypoints are read again on copies of each face at canonical scales (2.0, 2.5 and 3.0
    times its box resized to the model's input) and averaged, then once more on copies framed by those
    keypoints instead of the box: BlazeFace's keypoints move with the face's size in the photo and its
    box with what surrounds the face, and the model's answers move with them (``benchmarks/consistency.py``).
    The refinement costs six more model calls per face.
    """

    SCALES = (2.0, 2.5, 3.0)  # refinement: copies of the face at these multiples of its box
    BOX_PER_SPREAD = 1.2  # box side / (eye distance + eyes-to-mouth distance): median over UTKFace chips

    def __init__(self, min_face: int = 40, model: str = "full", min_score: float = 0.5, refine: bool = False,
                 refine_model: str = "short", also: str | None = "short", **_):
        from utils.blazeface import BlazeFace, BlazeFaceError

        try:
            self.net = BlazeFace(model, min_score)
            self.also = BlazeFace(also, min_score) if also else None
            self.second = BlazeFace(refine_model, 0.3) if refine else None
        except BlazeFaceError as exc:
            raise FaceError(str(exc)) from None
        self.min_face = int(min_face)

    @staticmethod
    def _points(kps: np.ndarray) -> np.ndarray:
        eyes = kps[:2][np.argsort(kps[:2, 0])]
        return np.vstack([eyes, kps[2:4]]).astype(np.float32)

    def _refined(self, rgb: np.ndarray, box, kps: np.ndarray) -> np.ndarray:
        """Keypoints read on copies framed by the detector's box, then on copies framed by those keypoints."""
        kps = self._read_again(rgb, box, kps)
        eyes = (kps[0] + kps[1]) / 2
        side = self.BOX_PER_SPREAD * (np.linalg.norm(kps[0] - kps[1]) + np.linalg.norm(kps[3] - eyes))
        (cx, cy) = kps[:4].mean(0)
        return self._read_again(rgb, (cx - side / 2, cy - side / 2, side, side), kps)

    def _read_again(self, rgb: np.ndarray, box, kps: np.ndarray) -> np.ndarray:
        """The mean of the keypoints found on copies of ``box``'s face at ``SCALES`` (``kps`` if none)."""
        x, y, w, h = box
        side, readings = self.second.side, []
        for scale in self.SCALES:
            s = side / (max(w, h) * scale)
            m = np.array([[s, 0, side / 2 - (x + w / 2) * s], [0, s, side / 2 - (y + h / 2) * s]], np.float32)
            crop = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            found = self.second(crop)
            if found:  # the detection nearest the centre of the copy
                _, _, k = min(found, key=lambda d: (d[0][0] + d[0][2] / 2 - side / 2) ** 2
                              + (d[0][1] + d[0][3] / 2 - side / 2) ** 2)
                readings.append(np.c_[k, np.ones(len(k))] @ cv2.invertAffineTransform(m).T)
        return np.mean(readings, axis=0) if readings else kps

    def _found(self, rgb: np.ndarray) -> list:
        """The main model's faces plus ``also``'s faces that overlap none of them by IoU > 0.3."""
        from utils.tracking import iou

        found = self.net(rgb)
        if self.also is None:
            return found
        taken = [box for box, _, _ in found]
        for face in self.also(rgb):
            if all(iou(face[0], box) <= 0.3 for box in taken):
                found.append(face)
                taken.append(face[0])
        return found

    def __call__(self, rgb: np.ndarray) -> list:
        rows = []
        for box, score, kps in self._found(rgb):
            if max(box[2], box[3]) < self.min_face * 0.6:  # BlazeFace boxes are tight (brow to chin)
                continue
            if self.second is not None:
                kps = self._refined(rgb, box, kps)
            rows.append((box, score, self._points(kps)))
        return _clip(rows, rgb.shape)


def _refined_blazeface(min_face: int = 40, **kw):
    return BlazeFaceDetector(min_face, refine=True, **kw)


DETECTORS = {"blazeface": BlazeFaceDetector, "blazeface_refine": _refined_blazeface, "mtcnn": MtcnnDetector,
             "dlib": DlibDetector, "haar": HaarDetector}


def make_detector(kind: str = "mtcnn", min_face: int = 40):
    """A detector by name: ``detector(rgb) -> [Face]``."""
    if kind not in DETECTORS:
        raise FaceError(f"unknown detector {kind!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[kind](min_face=min_face)


def alignment_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity transform taking the five (MTCNN) or four (BlazeFace) landmarks to the template in a
    ``size`` x ``size`` crop."""
    template = TEMPLATE if len(landmarks) == 5 else TEMPLATE4
    m, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), template * size, method=cv2.LMEDS)
    if m is None:  # degenerate landmarks: least squares on the two eyes only
        m, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks[:2], np.float32), template[:2] * size)
    return m


def box_matrix(box, size: int, margin: float) -> np.ndarray:
    """2x3 transform taking the box, enlarged by ``margin`` x its side on every side, to the crop."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    s = size / side
    cx, cy = x + w / 2, y + h / 2
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)


def face_crop(rgb: np.ndarray, face: Face, size: int, margin: float = 0.15, oversample: int = 4) -> np.ndarray:
    """An aligned ``size`` x ``size`` crop (box crop when the face has no landmarks).

    The warp interpolates bicubically at up to ``oversample`` x the size (enough that it never shrinks by
    more than 1:1) and then shrinks by area averaging, so that a large face is anti-aliased the way the
    training crops were resized. Bilinear interpolation blurred faces near the crop's own scale away from
    the sharp, shrunk training crops (``benchmarks/consistency.py``: the same face alone at 80 px and at
    200 px got ages within 3 years 76 % of the time).
    """
    m = alignment_matrix(face.landmarks, size) if face.landmarks is not None else box_matrix(face.box, size, margin)
    k = int(np.clip(np.ceil(1.0 / max(np.hypot(m[0, 0], m[1, 0]), 1e-6)), 1, max(oversample, 1)))
    out = cv2.warpAffine(rgb, m * np.float32(k), (size * k, size * k), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    return out if k == 1 else cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def detect(detector, rgb: np.ndarray, max_side: int = 1600) -> list:
    """Faces in an image of any size: images larger than ``max_side`` are searched at a reduced size
    (a 24-megapixel photo would otherwise take seconds and gigabytes) and the results scaled back."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return detector(rgb)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    faces = []
    for f in detector(small):
        box = tuple(int(round(v / scale)) for v in f.box)
        lm = None if f.landmarks is None else f.landmarks / scale
        faces.append(Face(box, f.score, lm))
    return faces
