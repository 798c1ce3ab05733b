"""Joint emotion, pose, gender and age training: the four-head model the demos use.

Run `python CONFUSION_EPGA_multitask.py --help` for the flags; the engine is utils/engine/.
"""
import sys

import utils  # noqa: F401  (TensorFlow environment switches, before anything imports tensorflow)
from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("CONFUSION_EPGA_multitask"))
