"""Console logging of the scripts: progress on stdout as plain lines, notes and warnings on stderr.

Library modules log through ``logging.getLogger(__name__)``; only the scripts' entry points call
``setup_logging`` (a library never configures the root logger of the program that imports it).
"""
from __future__ import annotations

import logging
import sys


class _Console(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.WARNING:
                print(f"note: {record.getMessage()}", file=sys.stderr, flush=True)
            else:
                print(record.getMessage(), flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Route the project's loggers (``utils``, ``models``, ``data``) to the console; idempotent."""
    for name in ("utils", "models", "data"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _Console) for h in logger.handlers):
            logger.addHandler(_Console())
        logger.propagate = False
