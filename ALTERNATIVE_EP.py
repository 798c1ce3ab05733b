"""Alternating emotion + pose training: MTL-SA, DML-LWF, distillation, naive alternation.

Run `python ALTERNATIVE_EP.py --help` for the flags; the engine is utils/engine/.
"""
import sys

import utils  # noqa: F401  (TensorFlow environment switches, before anything imports tensorflow)
from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("ALTERNATIVE_EP"))
