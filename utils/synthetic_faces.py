"""Procedurally drawn synthetic faces with controlled emotion, head yaw, gender and age.

Each face is drawn from independent random attributes; the three toy datasets label one task family
each (``toy_emotion``, ``toy_pose``, ``toy_gender_age``) and keep the other attributes as hidden
``oracle_<task>`` columns. The datasets also differ in style (background, lighting, noise, blur), so
a model trained on one meets a real distribution shift on the others, as with disjoint real datasets.

Cues (all survive 64x64 grayscale):
* emotion: mouth curvature / opening, brow slant and height, eye opening, nose wrinkles (disgust);
* pose (the 5 yaw bins of ``utils.tasks``): horizontal offset of eyes, nose and mouth, narrower face,
  smaller far eye, visible ear;
* gender: long hair framing the face vs short hair, thin vs thick brows, stubble;
* age: eye size and face proportions (children), forehead wrinkles, grey hair (elderly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SS = 4  # supersampling factor for anti-aliased drawing

YAW_RANGES = {0: (-8, 8), 1: (14, 55), 2: (-55, -14), 3: (-85, -64), 4: (64, 85)}
AGE_RANGES = {0: (0, 2), 1: (4, 6), 2: (8, 12), 3: (15, 20), 4: (25, 32), 5: (38, 43), 6: (48, 53),
              7: (60, 90)}

STYLES = {
    # background grey level range, gradient strength, lighting direction, noise sigma, blur
    "toy_emotion": dict(bg=(170, 215), grad=40, light=0.0, noise=4.0, blur=0, texture=0.0),
    "toy_pose": dict(bg=(60, 120), grad=25, light=1.6, noise=9.0, blur=1, texture=25.0),
    "toy_gender_age": dict(bg=(110, 160), grad=70, light=3.1, noise=6.0, blur=0, texture=10.0),
}
DATASET_TASKS = {"toy_emotion": ("emotion",), "toy_pose": ("pose",), "toy_gender_age": ("gender", "age")}


@dataclass
class Face:
    emotion: int
    pose: int
    gender: int
    age: int
    yaw: float
    age_years: float


def random_face(rng: np.random.Generator) -> Face:
    pose = int(rng.integers(5))
    age = int(rng.integers(8))
    return Face(int(rng.integers(7)), pose, int(rng.integers(2)), age,
                float(rng.uniform(*YAW_RANGES[pose])), float(rng.uniform(*AGE_RANGES[age])))


def _pt(x, y):
    return int(round(x * SS)), int(round(y * SS))


def _curve(img, x0, x1, y, bend, color, thick, skew=0.0):
    """Quadratic curve from x0 to x1 at height y; bend > 0 sags the middle down (a smile)."""
    xs = np.linspace(x0, x1, 24)
    t = (xs - x0) / max(x1 - x0, 1e-6)
    ys = y + bend * (1 - (2 * t - 1) ** 2) + skew * (2 * t - 1)
    pts = np.stack([xs * SS, ys * SS], 1).round().astype(np.int32)
    cv2.polylines(img, [pts], False, color, max(1, int(thick * SS)), cv2.LINE_AA)


def draw_face(face: Face, size: int, rng: np.random.Generator, style: dict) -> np.ndarray:
    """Render one face (uint8 BGR, size x size)."""
    S = size * SS
    bg_lo, bg_hi = style["bg"]
    base = rng.uniform(bg_lo, bg_hi)
    yy, xx = np.mgrid[0:S, 0:S] / S
    img = base + style["grad"] * (yy - 0.5) * rng.uniform(0.5, 1.0)
    if style["texture"]:
        blobs = cv2.resize(rng.normal(0, 1, (6, 6)), (S, S), interpolation=cv2.INTER_CUBIC)
        img = img + style["texture"] * blobs
    tint = rng.uniform(0.85, 1.15, 3)
    img = np.clip(np.stack([img * tint[0], img * tint[1], img * tint[2]], -1), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)

    u = size / 64.0  # unit: 1 pixel of a 64-pixel face image
    young = face.age_years < 13
    cx = size / 2 + rng.uniform(-3, 3) * u
    cy = size / 2 + rng.uniform(-2, 3) * u + (2 * u if young else 0)
    fw = rng.uniform(17, 20) * u * (1.08 if young else 1.0)
    fh = rng.uniform(22, 25) * u * (0.9 if young else 1.0)
    yaw = math.radians(face.yaw)
    turn = math.sin(yaw)
    fw_eff = fw * (0.72 + 0.28 * math.cos(yaw))
    skin = rng.uniform(150, 225)
    skin_c = tuple(float(skin * k) for k in (0.82, 0.9, 1.0))
    hair_level = 35 + 190 * np.clip((face.age_years - 38) / 40, 0, 1) + rng.uniform(-10, 10)
    hair_c = (hair_level * 0.9, hair_level * 0.95, hair_level)
    dark = (40.0, 40.0, 45.0)

    # hair behind the face: long for women, cropped for men
    if face.gender == 0:
        cv2.ellipse(img, _pt(cx, cy + 4 * u), _pt(fw_eff * 1.35, fh * 1.25), 0, 180, 360, hair_c, -1,
                    cv2.LINE_AA)
        cv2.rectangle(img, _pt(cx - fw_eff * 1.35, cy + 3 * u), _pt(cx + fw_eff * 1.35, cy + fh * 1.1),
                      hair_c, -1, cv2.LINE_AA)
    # ear on the visible side
    if abs(face.yaw) > 12:
        ex = cx - np.sign(turn) * fw_eff * 0.95
        cv2.ellipse(img, _pt(ex, cy), _pt(3 * u, 5 * u), 0, 0, 360, skin_c, -1, cv2.LINE_AA)
    cv2.ellipse(img, _pt(cx, cy), _pt(fw_eff, fh), 0, 0, 360, skin_c, -1, cv2.LINE_AA)
    if face.gender == 1:
        cv2.ellipse(img, _pt(cx, cy - fh * 0.55), _pt(fw_eff * 1.02, fh * 0.5), 0, 180, 360, hair_c, -1,
                    cv2.LINE_AA)
        if face.age_years >= 18 and rng.random() < 0.7:  # stubble on the jaw
            for _ in range(40):
                a = rng.uniform(0.15, 0.85) * math.pi
                r = rng.uniform(0.75, 0.97)
                p = _pt(cx + fw_eff * r * math.cos(a), cy + fh * r * math.sin(a))
                cv2.circle(img, p, max(1, int(0.5 * u * SS)), (skin * 0.45,) * 3, -1)
    else:
        cv2.ellipse(img, _pt(cx, cy - fh * 0.62), _pt(fw_eff * 0.95, fh * 0.42), 0, 180, 360, hair_c, -1,
                    cv2.LINE_AA)

    off = turn * fw * 0.45  # features slide towards the turned side
    eye_y = cy - fh * 0.12
    eye_dx = fw_eff * 0.42
    e = face.emotion
    eye_open = {2: 1.6, 5: 1.7, 0: 0.75, 1: 0.7}.get(e, 1.0) * (1.35 if young else 1.0)
    brow_lift = {5: 5.0, 2: 3.0, 4: 1.0}.get(e, 0.0) * u
    brow_slant = {0: 3.5, 1: 1.5, 2: -2.5, 4: -3.5}.get(e, 0.0) * u  # + = inner end down
    brow_thick = (1.6 if face.gender == 1 else 0.8) * u
    for side in (-1, 1):
        ex = cx + off + side * eye_dx
        # the far eye (on the side the face turns away from) shrinks with yaw
        far = 1.0 - 0.45 * max(0.0, side * turn)
        rx, ry = 3.6 * u * far, 2.0 * u * eye_open
        cv2.ellipse(img, _pt(ex, eye_y), _pt(rx, ry), 0, 0, 360, (245, 245, 245), -1, cv2.LINE_AA)
        cv2.circle(img, _pt(ex + off * 0.12, eye_y), max(1, int(1.6 * u * far * SS)), dark, -1,
                   cv2.LINE_AA)
        by = eye_y - 5.5 * u - brow_lift
        inner, outer = ex - side * 3.5 * u * far, ex + side * 4 * u * far
        p_in, p_out = _pt(inner, by + brow_slant), _pt(outer, by - brow_slant * 0.5)
        cv2.line(img, p_in, p_out, dark, max(1, int(brow_thick * SS)), cv2.LINE_AA)
    # nose: points towards the turned side
    nx = cx + off * 1.35
    cv2.line(img, _pt(cx + off * 0.9, eye_y + 2 * u), _pt(nx, cy + fh * 0.22), (skin * 0.55,) * 3,
             max(1, int(1.2 * u * SS)), cv2.LINE_AA)
    if e == 1:  # disgust: nose wrinkles
        for k in (-1, 1):
            _curve(img, nx + k * 1 * u - 2 * u, nx + k * 1 * u + 2 * u, eye_y + 4 * u + abs(k) * u, -0.8 * u,
                   (skin * 0.5,) * 3, 0.7 * u)
    # mouth
    mx, my = cx + off * 1.1, cy + fh * 0.5
    mw = fw_eff * 0.42
    lip = (70.0, 60.0, 150.0) if face.gender == 0 else (60.0, 60.0, 110.0)
    if e in (2, 5):  # open mouth: round O (surprise) or wide oval (fear)
        axes = (mw * 0.45, 4.5 * u) if e == 5 else (mw * 0.9, 2.6 * u)
        cv2.ellipse(img, _pt(mx, my), _pt(*axes), 0, 0, 360, (30, 30, 60), -1, cv2.LINE_AA)
    else:
        bend = {3: 5.0, 4: -4.0, 0: -1.0, 1: 0.0, 6: 0.0}[e] * u
        skew = 2.5 * u if e == 1 else 0.0
        width = mw * (1.25 if e == 3 else 0.8 if e == 0 else 1.0)
        _curve(img, mx - width, mx + width, my - bend * 0.3, bend, lip, 1.6 * u, skew)
    # age: forehead wrinkles and cheek lines
    n_wrinkles = int(np.clip((face.age_years - 22) / 11, 0, 4))
    for k in range(n_wrinkles):
        wy = eye_y - 10 * u - 2.2 * u * k
        _curve(img, cx + off * 0.5 - fw_eff * 0.45, cx + off * 0.5 + fw_eff * 0.45, wy, -0.8 * u,
               (skin * 0.6,) * 3, 0.6 * u)
    if face.age_years >= 48:
        for side in (-1, 1):
            x0 = mx + side * (mw + 2 * u)
            cv2.line(img, _pt(x0, my - 5 * u), _pt(x0 + side * u, my + 2 * u), (skin * 0.6,) * 3,
                     max(1, int(0.7 * u * SS)), cv2.LINE_AA)

    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    # lighting gradient from a dataset-specific direction, then sensor noise and blur
    ang = style["light"] + rng.uniform(-0.4, 0.4)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    img *= (1 + 0.35 * (xx * math.cos(ang) + yy * math.sin(ang)))[..., None]
    img += rng.normal(0, style["noise"], img.shape)
    if style["blur"]:
        img = cv2.GaussianBlur(img, (3, 3), style["blur"] * 0.6)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate(dataset: str, n: int, seed: int = 0, size: int = 64):
    """Yield ``(image, Face)`` pairs for one toy dataset (deterministic given the seed)."""
    if dataset not in STYLES:
        raise ValueError(f"unknown toy dataset {dataset!r}; choose from {', '.join(STYLES)}")
    rng = np.random.default_rng([seed, list(STYLES).index(dataset)])
    for _ in range(n):
        face = random_face(rng)
        yield draw_face(face, size, rng, STYLES[dataset]), face


def write_toy(out_dir, n_per_dataset: int = 1500, seed: int = 0, size: int = 64,
              datasets=tuple(STYLES)) -> list:
    """Write the toy datasets under ``out_dir`` (images in ``toy/<name>/``, CSVs in ``db/``)."""
    import pandas as pd

    out_dir = Path(out_dir)
    written = []
    for name in datasets:
        img_dir = out_dir / "toy" / name
        img_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for i, (img, face) in enumerate(generate(name, n_per_dataset, seed, size)):
            rel = f"toy/{name}/{i:06d}.png"
            cv2.imwrite(str(out_dir / rel), img)
            row = {"full_path": rel}
            attrs = {"emotion": face.emotion, "pose": face.pose, "gender": face.gender, "age": face.age}
            for task, value in attrs.items():
                row[task if task in DATASET_TASKS[name] else f"oracle_{task}"] = value
            row["yaw"] = round(face.yaw, 2)
            row["age_years"] = round(face.age_years, 1)
            rows.append(row)
        csv = out_dir / "db" / f"{name}_cleaned.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = csv.with_suffix(".csv.tmp")
        pd.DataFrame(rows).to_csv(tmp, index=False)
        tmp.replace(csv)
        written.append(csv)
    return written

