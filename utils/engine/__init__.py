"""The one training engine behind every script: single-task, joint ("confusion") and alternating.

A run is data: a list of datasets (each labelling some tasks), a backbone, a schedule and a
missing-task strategy (``PseudoConfig``). Each outer epoch

1. picks its training data (``schedule.py``): one dataset (STL, or the current turn of an
   alternating schedule) or all datasets mixed (joint, and the warm-up of alternating runs);
2. fills the tasks that data does not label (``teacher.py``): zeros (masked), or distilled / pseudo
   targets computed from the model as it stands before the epoch, all before its first step;
3. trains one Keras epoch with masked losses on a tf.data pipeline (``trainer.py``; the multi-worker
   step is in ``distribution.py``), then fits BatchNorm statistics to the datasets (``batchnorm.py``);
4. evaluates every task on its held-out validation rows (true labels only), writes metrics,
   confusion matrices and checkpoints (``checkpoints.py``), and at the end of each round applies
   learning-rate plateau and early stopping, whose state lives here and therefore survives across
   the per-epoch ``fit`` calls.

At the end the best weights are evaluated on the test rows and written to ``test_metrics.json``.
"""
from utils.engine.checkpoints import check_finite
from utils.engine.config import RunConfig, Split, class_counts, config_from_run, load_config, load_splits
from utils.engine.schedule import Budget, PlateauControl, Schedule
from utils.engine.trainer import Trainer, train

__all__ = ["Budget", "PlateauControl", "RunConfig", "Schedule", "Split", "Trainer", "check_finite",
           "class_counts", "config_from_run", "load_config", "load_splits", "train"]
