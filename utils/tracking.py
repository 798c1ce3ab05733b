"""Per-face tracks across video frames, each with its own smoothing window per task."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from utils.kinds import KINDS


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
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
                mean = np.mean(hist, axis=0)
                if "years" in rec[t]:  # the interval of the window's mean distribution, as one frame's is read
                    rec[t]["smoothed"] = KINDS["years"].decode(names, mean)["label"]
                else:  # the window's label, with its mean probability over the window
                    k = self._smoothed_index(hist)
                    rec[t]["smoothed"], rec[t]["smoothed_prob"] = names[k], float(mean[k])
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


