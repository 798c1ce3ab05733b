"""Joint emotion + age training.

Run `python CONFUSION_EA_multitask.py --help` for the flags; the engine is utils/engine/.
"""
import sys

import utils  # noqa: F401  (TensorFlow environment switches, before anything imports tensorflow)
from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("CONFUSION_EA_multitask"))
