"""Pictures a person can read: every face's labels next to that face and over no other face or label.

``draw`` tries, for each face in turn, a label block above, below, right and left of its box at a
font size that suits the face, then smaller ones; a block is accepted only where it stays inside the
image and overlaps no face and no block already placed. When a face has no such place, or when there
are more faces than ``max_inline``, every face gets a number on its box instead and the labels go to
a legend beside the picture, one line per face. OpenCV and numpy only.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.tasks import TASK_SPECS

FONT = cv2.FONT_HERSHEY_SIMPLEX
COLOURS = {t.name: t.colour for t in TASK_SPECS.values()}
YAW_ARROWS = {"frontal": 0.0, "yaw +10..+60": -0.5, "yaw -60..-10": 0.5, "yaw <= -60": 1.0, "yaw >= +60": -1.0}


def describe(rec: dict, task: str, labels_key: str = "label") -> str:
    """The short text of one task's answer: a class with its calibrated probability ("female 78%"; a video
    track's label with its mean probability over the window), age as a range (it carries no probability)."""
    ans = rec[task]
    value = ans.get(labels_key, ans["label"])
    prob = ans.get("prob" if labels_key == "label" else f"{labels_key}_prob")
    return value if prob is None else f"{value} {prob:.0%}"


def lines_of(rec: dict, tasks: list, labels_key: str) -> list:
    return [(t, describe(rec, t, labels_key)) for t in tasks if t in rec]


def _block(lines, scale: float, thick: int) -> tuple:
    """(width, height, line height) of a block of text lines at ``scale``."""
    widths = [cv2.getTextSize(text, FONT, scale, thick)[0][0] for _, text in lines] or [0]
    (_, th), base = cv2.getTextSize("Mg", FONT, scale, thick)
    line_h = th + base + 3
    return max(widths) + 6, line_h * len(lines) + 2, line_h


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _candidates(box, w, h, gap: int = 2) -> list:
    x, y, bw, bh = box
    return [(x, y - h - gap), (x, y + bh + gap), (x + bw + gap, y), (x - w - gap, y),
            (x + bw - w, y - h - gap), (x + bw - w, y + bh + gap)]


def place(records: list, tasks: list, shape, labels_key: str = "label") -> list | None:
    """One ``(x, y, scale, thick)`` per record for an inline layout, or None when some face has no free place."""
    H, W = shape[:2]
    faces = [(r["box"][0], r["box"][1], r["box"][0] + r["box"][2], r["box"][1] + r["box"][3]) for r in records]
    taken, out = [], []
    for i, rec in enumerate(records):
        lines = lines_of(rec, tasks, labels_key)
        face_scale = float(np.clip(rec["box"][3] / 160, 0.38, 0.9)) * max(0.5, min(W, H) / 600) ** 0.25
        spot = None
        for scale in (face_scale, face_scale * 0.8, 0.38, 0.33):
            thick = 1
            w, h, _ = _block(lines, scale, thick)
            for x, y in _candidates(rec["box"], w, h):
                rect = (x, y, x + w, y + h)
                if x < 0 or y < 0 or x + w > W or y + h > H:
                    continue
                if any(_overlap(rect, f) for j, f in enumerate(faces) if j != i):
                    continue
                if any(_overlap(rect, t) for t in taken):
                    continue
                spot = (x, y, scale, thick)
                taken.append(rect)
                break
            if spot:
                break
        if spot is None:
            return None
        out.append(spot)
    return out


def _pose_arrow(out, rec, labels_key, thick):
    x, y, w, h = rec["box"]
    label = rec["pose"].get(labels_key, rec["pose"]["label"])
    dx, dy = YAW_ARROWS.get(label), 0.0
    angles = rec["pose"].get("smoothed_degrees" if labels_key == "smoothed" else "degrees")
    if angles:  # degrees: Pointing'04's signs (positive yaw turns left, positive pitch looks up)
        dx = -float(np.sin(np.radians(angles["yaw"])))
        dy = -float(np.sin(np.radians(angles.get("pitch", 0.0))))
    if dx is None:
        return
    c = (x + w // 2, y + h // 2)
    tip = (int(c[0] + dx * w * 0.6), int(c[1] + dy * h * 0.6))
    if abs(dx) + abs(dy) > 0.05:
        cv2.arrowedLine(out, c, tip, COLOURS["pose"], thick + 1, cv2.LINE_AA, tipLength=0.3)
    else:
        cv2.circle(out, c, max(3, thick * 2), COLOURS["pose"], -1, cv2.LINE_AA)


def _text_block(out, lines, x, y, scale, thick):
    w, h, line_h = _block(lines, scale, thick)
    cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 0), -1)
    for k, (t, text) in enumerate(lines):
        base_y = y + (k + 1) * line_h - 3
        cv2.putText(out, text, (x + 3, base_y), FONT, scale, COLOURS.get(t, (255, 255, 255)), thick, cv2.LINE_AA)


def draw(rgb: np.ndarray, records: list, labels_key: str = "label", max_inline: int = 8) -> np.ndarray:
    """The picture with every face's box, yaw arrow and labels (inline, or numbered with a legend)."""
    out = rgb.copy()
    H, W = out.shape[:2]
    tasks = [t for t in COLOURS if any(t in r for r in records)]
    thick = max(1, int(round(min(W, H) / 500)))
    for rec in records:
        x, y, w, h = rec["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thick + 1)
        if "pose" in rec:
            _pose_arrow(out, rec, labels_key, thick)
    spots = place(records, tasks, out.shape, labels_key) if len(records) <= max_inline else None
    if spots is not None:
        for rec, (x, y, scale, t) in zip(records, spots):
            _text_block(out, lines_of(rec, tasks, labels_key), x, y, scale, t)
        return out
    return _numbered(out, records, tasks, labels_key)


def reading_order(boxes: list) -> list:
    """Indices of ``boxes`` row by row (a face whose centre is within half a median face height of the
    row's first face belongs to that row), left to right within a row."""
    if not boxes:
        return []
    half = np.median([b[3] for b in boxes]) / 2
    by_y = sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2)
    rows, current, top = [], [], None
    for i in by_y:
        centre = boxes[i][1] + boxes[i][3] / 2
        if current and centre - top > half:
            rows.append(current)
            current = []
        if not current:
            top = centre
        current.append(i)
    rows.append(current)
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i][0])]


def _numbered(out: np.ndarray, records: list, tasks: list, labels_key: str) -> np.ndarray:
    """Numbers on the boxes and a legend panel to the right: one line per face, in reading order."""
    H, W = out.shape[:2]
    order = reading_order([r["box"] for r in records])
    tag_scale = float(np.clip(min(W, H) / 900, 0.4, 0.9))
    for n, i in enumerate(order, start=1):
        x, y, w, h = records[i]["box"]
        text = str(n)
        (tw, th), base = cv2.getTextSize(text, FONT, tag_scale, 1)
        cv2.rectangle(out, (x, y), (x + tw + 6, y + th + base + 4), (0, 0, 0), -1)
        cv2.putText(out, text, (x + 3, y + th + 2), FONT, tag_scale, (255, 255, 255), 1, cv2.LINE_AA)
    scale = float(np.clip(H / (len(records) + 2) / 28, 0.38, 0.6))
    (_, th), base = cv2.getTextSize("Mg", FONT, scale, 1)
    line_h = th + base + 4
    rows = [(n, [(t, describe(records[i], t, labels_key)) for t in tasks if t in records[i]])
            for n, i in enumerate(order, start=1)]
    widths = [sum(cv2.getTextSize(txt, FONT, scale, 1)[0][0] + 12 for _, txt in parts)
              + cv2.getTextSize(f"{n}:", FONT, scale, 1)[0][0] + 14 for n, parts in rows]
    panel_w = max(widths) + 8
    panel_h = max(H, line_h * (len(rows) + 1) + 8)
    canvas = np.zeros((panel_h, W + panel_w, 3), np.uint8)
    canvas[:H, :W] = out
    y = line_h
    for n, parts in rows:
        x = W + 8
        cv2.putText(canvas, f"{n}:", (x, y), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
        x += cv2.getTextSize(f"{n}:", FONT, scale, 1)[0][0] + 10
        for t, txt in parts:
            cv2.putText(canvas, txt, (x, y), FONT, scale, COLOURS.get(t, (255, 255, 255)), 1, cv2.LINE_AA)
            x += cv2.getTextSize(txt, FONT, scale, 1)[0][0] + 12
        y += line_h
    return canvas
