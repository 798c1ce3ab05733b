"""Joint emotion + pose training: All-in-one, pseudo labels, LEL-LTN (--is_LTN), DCN-AP (--is_MRF).

Run `python CONFUSION_EP_multitask.py --help` for the flags; the engine is utils/engine/.
"""
import sys

import utils  # noqa: F401  (TensorFlow environment switches, before anything imports tensorflow)
from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("CONFUSION_EP_multitask"))
