"""The one training engine behind every script: single-task, joint ("confusion") and alternating.

A run is data: a list of datasets (each labelling some tasks), a backbone, a schedule, a missing-task
strategy (``PseudoConfig``) and a loss-weighting strategy. Each outer epoch

1. picks its training data (``schedule.py``): one dataset (STL, or the current turn of an
   alternating schedule) or all datasets mixed (joint, and the warm-up of alternating runs);
2. fills the tasks that data does not label (``teacher.py``): zeros (masked), or distilled / pseudo
   targets computed from the model as it stands before the epoch, all before its first step;
3. trains one epoch with the learner's step (``step.py``: each task's loss from its kind, combined by
   the weighting strategy; ``fit`` on one device or mirrored GPUs, ``distribution.py`` across workers),
   then fits BatchNorm statistics to the datasets (``probe.py``, ``batchnorm.py``);
4. evaluates every task on its held-out validation rows (true labels only, ``probe.py``), writes
   metrics (``records.py``), confusion matrices and checkpoints (``checkpoints.py``), and at the end of
   each round applies learning-rate plateau and early stopping.

``trainer.py`` sequences these parts; ``config.py`` is the resolved configuration, ``data.py`` loads
and splits the datasets, ``heads.py`` turns the tasks into objectives. At the end the best weights are
evaluated on the test rows (``final_test.py``).
"""
from utils.engine.checkpoints import check_finite
from utils.engine.config import RunConfig, config_from_run, load_config
from utils.engine.data import Split, class_counts, load_splits
from utils.engine.schedule import Budget, PlateauControl, Schedule
from utils.engine.trainer import Trainer, train

__all__ = ["Budget", "PlateauControl", "RunConfig", "Schedule", "Split", "Trainer", "check_finite",
           "class_counts", "config_from_run", "load_config", "load_splits", "train"]
