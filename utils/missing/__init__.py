"""Missing-task strategies: one module each, looked up by name in ``utils.registries.MISSING_TASKS``."""
from __future__ import annotations

from utils.missing.base import FillInputs, Flag, MissingTaskStrategy

__all__ = ["FillInputs", "Flag", "MissingTaskStrategy", "strategy_for", "strategy_classes"]


def strategy_classes() -> dict:
    """name -> class of every registered strategy (their modules are numpy-only: no TensorFlow)."""
    from utils.registries import MISSING_TASKS, resolve

    return {name: resolve(MISSING_TASKS, name, "missing-task strategy") for name in MISSING_TASKS}


def strategy_for(pseudo) -> MissingTaskStrategy:
    """The strategy a ``PseudoConfig`` names (``--missing``, or the seed lines' is_* flags)."""
    from utils.registries import MISSING_TASKS, resolve

    return resolve(MISSING_TASKS, pseudo.strategy_name, "missing-task strategy")(pseudo)
