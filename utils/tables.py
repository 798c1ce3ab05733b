"""Face records streamed to a table: one row per face per frame (or image), CSV or JSON Lines by suffix.

Rows are written and flushed as they come, so a long video needs no more memory than one frame's
faces. CSV columns: source, frame, time_s, track, box (x, y, w, h), detector score, each landmark's
x and y, and per task its label plus one column per class probability (``<task>_p_<class>``; ages
also ``age_years``, ``age_lo``, ``age_hi``). JSON Lines keeps each record as the demos build it.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from utils.faces import LANDMARK_NAMES, LANDMARK_NAMES4


class FaceTable:
    def __init__(self, path, class_names: dict):
        self.path = Path(path)
        self.csv = self.path.suffix.lower() == ".csv"
        if not self.csv and self.path.suffix.lower() not in (".jsonl", ".json"):
            raise ValueError(f"{path}: a table is a .csv or a .jsonl file")
        self.class_names = class_names
        self.file = open(self.path, "w", newline="")
        self.writer = None
        self.rows = 0

    def columns(self) -> list:
        cols = ["source", "frame", "time_s", "track", "x", "y", "w", "h", "score"]
        names = dict.fromkeys((*LANDMARK_NAMES, *LANDMARK_NAMES4))
        cols += [f"{n}_{axis}" for n in names for axis in "xy"]
        for t, names in self.class_names.items():
            cols.append(t)
            if t == "age" and len(names) == 101:
                cols += ["age_years", "age_lo", "age_hi"]
            cols += [f"{t}_p_{n}" for n in names]
        return cols

    def write(self, source: str, frame: int, time_s: float, records: list) -> None:
        for rec in records:
            if not self.csv:
                row = {"source": source, "frame": frame, "time_s": round(time_s, 3), **rec}
                self.file.write(json.dumps(row) + "\n")
                continue
            if self.writer is None:
                self.writer = csv.DictWriter(self.file, fieldnames=self.columns(), extrasaction="ignore")
                self.writer.writeheader()
            row = {"source": source, "frame": frame, "time_s": round(time_s, 3), "track": rec.get("track", ""),
                   "score": rec.get("score", "")}
            row.update(dict(zip("xywh", rec["box"])))
            for n, (x, y) in rec.get("landmarks", {}).items():
                row[f"{n}_x"], row[f"{n}_y"] = x, y
            for t in self.class_names:
                if t not in rec:
                    continue
                ans = rec[t]
                row[t] = ans.get("smoothed", ans["label"])
                if "range" in ans:
                    row["age_years"], (row["age_lo"], row["age_hi"]) = ans["years"], ans["range"]
                for n, v in (ans.get("probs") or ans.get("degrees") or ans.get("values") or {}).items():
                    row[f"{t}_p_{n}"] = v
            self.writer.writerow(row)
        self.rows += len(records)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
