"""Built-in demo inputs made from a real photograph (scikit-image's astronaut, public domain)."""
from __future__ import annotations

import cv2
import numpy as np

ASTRONAUT_FACE = (150, 40, 150, 150)  # x, y, w, h: head and shoulders of the astronaut photograph


def sample_photo() -> np.ndarray:
    """The astronaut photograph (RGB uint8, 512 x 512), read from scikit-image's data folder without
    importing scikit-image (0.75 s)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the built-in sample photograph comes with scikit-image (pip install scikit-image)")
    bgr = cv2.imread(str(Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def multi_face_image(n: int = 3, seed: int = 0, size=(480, 960)) -> tuple:
    """Copies of the photo's face at different scales on a plain canvas; returns (RGB image, boxes)."""
    rng = np.random.default_rng(seed)
    x, y, w, h = ASTRONAUT_FACE
    face = sample_photo()[y:y + h, x:x + w]
    canvas = np.full((*size, 3), 200, np.uint8)
    boxes, slot = [], size[1] // n
    for i in range(n):
        side = int(rng.integers(130, min(slot, size[0]) - 10))
        tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        if i % 2:
            tile = tile[:, ::-1]
        px = i * slot + (slot - side) // 2
        py = int(rng.integers(5, size[0] - side - 5))
        canvas[py:py + side, px:px + side] = tile
        boxes.append((px, py, side, side))
    return canvas, boxes


def moving_faces_video(path: str, n_frames: int = 24, fps: float = 12.0, size=(360, 640)) -> list:
    """A clip of two faces crossing the frame, with a few empty frames; returns per-frame face counts."""
    x, y, w, h = ASTRONAUT_FACE
    face = cv2.resize(sample_photo()[y:y + h, x:x + w], (140, 140), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write video {path}")
    counts = []
    for f in range(n_frames):
        frame = np.full((*size, 3), 190, np.uint8)
        n = 0
        if f % 8 != 7:  # every eighth frame has no face
            for k, start in enumerate((20, 360)):
                px = start + 6 * f if k == 0 else start - 5 * f
                px = int(np.clip(px, 0, size[1] - 140))
                frame[100:240, px:px + 140] = face if k == 0 else face[:, ::-1]
                n += 1
        counts.append(n)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return counts
