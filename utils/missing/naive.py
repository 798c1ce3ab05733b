"""No targets for the missing task: its rows are masked (All-in-one, or naive alternation)."""
from __future__ import annotations

from utils.missing.base import MissingTaskStrategy


class Naive(MissingTaskStrategy):
    name = "naive"

    @property
    def uses_teacher(self) -> bool:
        return False

    def label(self, mode: str) -> str:
        return "All-in-one" if mode == "joint" else "naive alternation"
