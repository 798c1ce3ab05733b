"""Command-line flags of every training script, defined once, and the scripts' configurations.

Each top-level script is one line: ``main("<SCRIPT>")``. What differs between scripts (the training
mode, which dataset flags exist and their default datasets, default model and hyper-parameters) is
data in ``SCRIPTS``. Booleans are written ``--flag=True|False`` as in the seed command lines; the
seeds' typos are accepted (see ``normalise_argv``).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from models.registry import BACKBONES
from utils.engine.config import RunConfig
from utils.pseudo_labels import PseudoConfig
from utils.registries import MISSING_TASKS, WEIGHTINGS
from utils.targets import BALANCE_POWER
from utils.tasks import AGE_KINDS, TASK_SPECS, TASK_TYPE_CODES, TASKS

RUN_DEFAULTS = {f.name: f.default for f in fields(RunConfig)}  # the defaults live in RunConfig only
PSEUDO_DEFAULTS = {f.name: f.default for f in fields(PseudoConfig)}  # ... and in PseudoConfig

def strategy_flags() -> list:
    """The flags the registered missing-task strategies declare (each once, in registry order)."""
    from utils.missing import strategy_classes

    seen, out = set(), []
    for cls in strategy_classes().values():
        for f in cls.flags:
            if f.name not in seen:
                seen.add(f.name)
                out.append(f)
    return out


# flag -> tasks the dataset given to it labels: one per task, and the seed lines' gender + age slot
DATASET_SLOTS = {**{f"dataset_{t}": (t,) for t in TASKS}, "dataset_gender_age": ("gender", "age")}
LOSS_WEIGHT_FLAGS = {t.name: t.weight_flag for t in TASK_SPECS.values()}
NO_DATASET = "none"  # --dataset_<task>=none drops a script's default dataset


@dataclass
class ScriptSpec:
    mode: str  # stl | joint | alternating
    slots: dict = field(default_factory=dict)  # dataset flag -> default dataset (``none`` drops it)
    defaults: dict = field(default_factory=dict)
    manifold: bool = False
    help: str = ""

    @property
    def optional_slots(self) -> tuple:
        """Every other one-task dataset flag: off unless given (a multi-task script takes any task)."""
        if self.mode == "stl":
            return ()
        covered = {t for slot in self.slots for t in DATASET_SLOTS[slot]}
        return tuple(f"dataset_{t}" for t in TASKS if t not in covered)


SCRIPTS = {
    "STL_general_train": ScriptSpec(
        "stl", {}, dict(model="mini_xception", patience=20),
        help="Single-task baseline (STL) on one dataset."),
    "ALTERNATIVE_EP": ScriptSpec(
        "alternating", {"dataset_emotion": "expw", "dataset_pose": "aflw"},
        dict(model="vggFace", patience=5, E_loss_weights=5.0, P_loss_weights=1.0, selection_threshold=0.9),
        help="Alternating emotion + pose training: MTL-SA, DML-LWF, distillation, naive alternation."),
    "ALTERNATIVE_EA": ScriptSpec(
        "alternating", {"dataset_emotion": "ferplus", "dataset_age": "adience"},
        dict(model="mini_xception", patience=10, E_loss_weights=5.0, A_loss_weights=1.0),
        help="Alternating emotion + age training (MTL-SA and baselines)."),
    "ALTERNATIVE_EGA": ScriptSpec(
        "alternating", {"dataset_emotion": "ferplus", "dataset_gender_age": "adience"},
        dict(model="mini_xception", patience=10, E_loss_weights=5.0, G_loss_weights=1.0, A_loss_weights=1.0),
        help="Alternating emotion + gender/age training (MTL-SA and baselines); add --dataset_pose to "
             "alternate over a pose dataset too."),
    "CONFUSION_EP_multitask": ScriptSpec(
        "joint", {"dataset_emotion": "ferplus", "dataset_pose": "aflw"},
        dict(model="mini_xception", patience=10, E_loss_weights=5.0, P_loss_weights=1.0),
        help="Joint emotion + pose training: All-in-one, pseudo labels, LEL-LTN (--is_LTN), DCN-AP (--is_MRF)."),
    "CONFUSION_EP_multitask_manifold": ScriptSpec(
        "joint", {"dataset_emotion": "ferplus", "dataset_pose": "aflw"},
        dict(model="mini_xception", patience=10, E_loss_weights=5.0, P_loss_weights=1.0),
        manifold=True, help="Joint emotion + pose training with manifold regularisers (SFSMR, SLRM)."),
    "CONFUSION_EPGA_multitask": ScriptSpec(
        "joint", {"dataset_emotion": "fer2013", "dataset_pose": "aflw", "dataset_gender_age": "adience"},
        dict(model="mini_xception", patience=10, batch_size=128, E_loss_weights=5.0, P_loss_weights=5.0,
             G_loss_weights=1.0, A_loss_weights=1.0),
        help="Joint emotion, pose, gender and age training: the four-head model the demos use."),
    "CONFUSION_EA_multitask": ScriptSpec(
        "joint", {"dataset_emotion": "ferplus", "dataset_age": "adience"},
        dict(model="mini_xception", patience=10, E_loss_weights=5.0, A_loss_weights=1.0),
        help="Joint emotion + age training."),
}


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "t", "on"):
        return True
    if v in ("false", "0", "no", "n", "f", "off", "none"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _bool(parser, name, default=False, help=""):
    parser.add_argument(f"--{name}", type=str2bool, nargs="?", const=True, default=default,
                        metavar="True|False", help=help)


def build_parser(script: str) -> argparse.ArgumentParser:
    spec = SCRIPTS[script]
    p = argparse.ArgumentParser(prog=f"{script}.py", description=spec.help,
                                usage="%(prog)s [--flag=value ...] (--help lists the flags)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_flags(p, spec)
    add_training_flags(p, spec)
    if spec.mode != "stl":
        add_multitask_flags(p, spec)
    return p


def add_data_flags(p: argparse.ArgumentParser, spec: ScriptSpec) -> None:
    """Datasets, splits and how labels and images are read."""
    g = p.add_argument_group("data")
    if spec.mode == "stl":
        g.add_argument("--dataset", default="imdb", help="dataset name (data/db/<name>_cleaned.csv) or a .csv path")
        g.add_argument("--task_type", type=int, default=10, choices=tuple(TASK_TYPE_CODES),
                       help=", ".join(f"{c} {t}" for c, t in TASK_TYPE_CODES.items() if c != 13)
                       + " (13 = gender, the reference's help text)")
        g.add_argument("--task", choices=TASKS, default=None, help="task by name (overrides --task_type)")
    for slot, default in spec.slots.items():
        g.add_argument(f"--{slot}", default=default,
                       help=f"dataset labelling {'+'.join(DATASET_SLOTS[slot])} ({NO_DATASET}: leave it out)")
    for slot in spec.optional_slots:
        g.add_argument(f"--{slot}", default=None,
                       help=f"optional extra dataset labelling {'+'.join(DATASET_SLOTS[slot])}")
    g.add_argument("--data_dir", default=RUN_DEFAULTS["data_dir"],
                   help="data root holding db/ (default: $MTL_DATA_DIR or ./data)")
    g.add_argument("--n_splits", type=int, default=RUN_DEFAULTS["n_splits"],
                   help="k of the seeded k-fold split (when no official split)")
    g.add_argument("--fold", type=int, default=RUN_DEFAULTS["fold"], help="which fold is the test set")
    g.add_argument("--val_fraction", type=float, default=RUN_DEFAULTS["val_fraction"],
                   help="share of train held out for validation")
    g.add_argument("--limit", type=int, default=RUN_DEFAULTS["limit"], help="use at most this many rows per dataset")
    g.add_argument("--train_limit", type=int, default=RUN_DEFAULTS["train_limit"],
                   help="train on at most this many rows per dataset; validation and test parts stay whole")
    g.add_argument("--cache_mb", type=int, default=RUN_DEFAULTS["cache_mb"],
                   help="keep decoded images in memory when they fit in this many MB (0 = never)")
    _bool(g, "disk_cache", default=RUN_DEFAULTS["disk_cache"],
          help="decoded images that exceed --cache_mb go to a memory-mapped file in DATA_DIR/cache/, reused by "
               "later runs (False: decode the files every epoch)")
    g.add_argument("--age_kind", default=RUN_DEFAULTS["age_kind"], choices=("auto", *AGE_KINDS),
                   help="age as the 8 Adience groups or as years 0..100 (101 bins, expected value); "
                        "auto: years for utkface/imdb/wiki/fgnet, groups otherwise")
    g.add_argument("--pose_kind", default=RUN_DEFAULTS["pose_kind"], choices=("bins", "degrees"),
                   help="head pose as the 5 yaw bins (classification) or as angles in degrees (regression: "
                        "yaw[, pitch[, roll]] as the dataset gives them, MAE per angle)")
    g.add_argument("--label_smoothing", type=float, default=RUN_DEFAULTS["label_smoothing"],
                   help="classification tasks: true one-hot targets become (1 - eps) onehot + eps / K "
                        "(Szegedy et al. 2016)")
    g.add_argument("--class_balance", default=RUN_DEFAULTS["class_balance"], choices=tuple(BALANCE_POWER),
                   help="classification tasks: weigh each true label by (mean count / its class count) to this "
                        "power (sqrt: 0.5, inverse: 1), so rare classes (FER2013's disgust) weigh more")
    g.add_argument("--age_sigma", type=float, default=RUN_DEFAULTS["age_sigma"],
                   help="years: Gaussian label smoothing (years)")
    g.add_argument("--age_loss", default=RUN_DEFAULTS["age_loss"], choices=("auto", "ce", "l1"),
                   help="years: cross-entropy (DEX) or L1 on the expected age; auto = l1 for ssrnet")
    g.add_argument("--image_check", default=RUN_DEFAULTS["image_check"], choices=("none", "exists", "header", "decode"),
                   help="how thoroughly to check every image before training (decode: with TensorFlow's "
                        "decoder, as training reads them; cached runs decode every image before epoch 1 anyway)")
    _bool(g, "skip_bad_images", help="drop rows whose image TensorFlow cannot decode (counted) instead of stopping")


def add_training_flags(p: argparse.ArgumentParser, spec: ScriptSpec) -> None:
    """Backbone, budget, optimiser, augmentation, distribution and the run folder."""
    g = p.add_argument_group("model and training")
    g.add_argument("--model", default=spec.defaults.get("model", RUN_DEFAULTS["model"]),
                   choices=tuple(BACKBONES), help="backbone (models/registry.py)")
    g.add_argument("--weights", default=None,
                   help="none | pretrained | path: trunk weights, or a .keras model of this project to start "
                        "from (layers matched by name; default: pretrained for vggFace, else none)")
    g.add_argument("--vggface_weights", default=None, help="path of rcmalli_vggface_tf_notop_vgg16.h5")
    g.add_argument("--input_size", type=int, default=RUN_DEFAULTS["input_size"],
                   help="input side (default per model: 224/64/96)")
    g.add_argument("--epoch", type=int, default=RUN_DEFAULTS["epoch"],
                   help="outer epochs (an alternating epoch trains one dataset)")
    g.add_argument("--rounds", type=int, default=RUN_DEFAULTS["rounds"],
                   help="equal budgets: train this many rounds, one pass over every dataset each, whatever the "
                        "method (overrides --epoch)")
    g.add_argument("--batch_size", type=int, default=spec.defaults.get("batch_size", RUN_DEFAULTS["batch_size"]))
    g.add_argument("--lr", type=float, default=RUN_DEFAULTS["lr"],
                   help="Adam learning rate (default 1e-4 vggFace, else 1e-3)")
    g.add_argument("--lr_schedule", default=RUN_DEFAULTS["lr_schedule"], choices=("plateau", "cosine"),
                   help="plateau: drop 10x after --patience epochs without improvement; cosine: decay to 0 over "
                        "the run's epochs, step by step (Loshchilov & Hutter 2017), no drops")
    g.add_argument("--num_worker", type=int, default=4, help="accepted for compatibility; tf.data autotunes")
    g.add_argument("--patience", type=int, default=spec.defaults.get("patience", RUN_DEFAULTS["patience"]),
                   help="epochs without improvement before the learning rate drops 10x")
    g.add_argument("--early_stopping_patience", type=int, default=RUN_DEFAULTS["early_stopping_patience"],
                   help="default: 2 x patience")
    _bool(g, "keep_checkpoints", help="keep every epoch's checkpoint-NNN.keras, not only the last (for weight "
          "averaging: utils/average_weights.py)")
    g.add_argument("--monitor", default=RUN_DEFAULTS["monitor"], choices=("val_loss", "val_acc", "val_score"),
                   help="what picks the best checkpoint and drives the plateau: the summed validation loss, the "
                        "mean accuracy, or the mean skill over tasks (0 at chance, 1 perfect: every task weighs "
                        "the same whatever its loss scale)")
    _bool(g, "is_augmentation", help="rotation +-10, shift 10%%, horizontal flip")
    g.add_argument("--augment_zoom", type=float, default=RUN_DEFAULTS["augment_zoom"],
                   help="with --is_augmentation: also a random scale change of +- this share (faces seen at "
                        "other sizes and framings, as the demos see them)")
    g.add_argument("--augment_low_res", type=float, default=RUN_DEFAULTS["augment_low_res"],
                   help="with --is_augmentation: this share of the images is shrunk to 37.5-100 %% of the input "
                        "and enlarged back (small faces in photographs, group pictures)")
    g.add_argument("--augment_surround", type=float, default=RUN_DEFAULTS["augment_surround"],
                   help="with --is_augmentation: this share of the images gets another face's pixels outside a "
                        "random box 0-15 %% in from each edge (neighbours in group pictures)")
    _bool(g, "is_dropout", help="Dropout(0.5) after the shared layer and in each head")
    _bool(g, "is_bn", help="BatchNormalization in the shared layer and heads")
    g.add_argument("--weights_decay", type=float, default=RUN_DEFAULTS["weights_decay"],
                   help="L2 coefficient on every kernel")
    _bool(g, "is_freezing", help="train the heads with a frozen backbone first")
    g.add_argument("--no_freezing_epoch", type=int, default=RUN_DEFAULTS["no_freezing_epoch"],
                   help="epoch at which the backbone is unfrozen")
    _bool(g, "cross_stitch", default=RUN_DEFAULTS["cross_stitch"],
          help="cross-stitch unit between task branches (dense heads)")
    g.add_argument("--bn_stats", default=RUN_DEFAULTS["bn_stats"], choices=("per_dataset", "mixed", "moving"),
                   help="alternating runs: BatchNorm statistics that evaluate / pseudo-label each dataset "
                        "(utils/engine/batchnorm.py)")
    _bool(g, "precise_bn", help="joint and single-task epochs: after each epoch, BatchNorm statistics estimated on "
          "un-augmented training images (mixed as the batches mix them) instead of the moving averages")
    g.add_argument("--seed", type=int, default=RUN_DEFAULTS["seed"])
    g.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last finished epoch (its own config is used)")
    g.add_argument("--distribute", default=RUN_DEFAULTS["distribute"], choices=("none", "mirrored", "multiworker"),
                   help="tf.distribute: MirroredStrategy (local GPUs) or MultiWorkerMirroredStrategy (TF_CONFIG)")
    _bool(g, "mixed_precision", help="mixed_float16 compute (GPUs with tensor cores)")
    _bool(g, "jit", help="XLA-compile the training step")
    g.add_argument("--output_dir", default=RUN_DEFAULTS["output_dir"],
                   help="runs are written to OUTPUT_DIR/<script>/<run_name>/")
    g.add_argument("--run_name", default=RUN_DEFAULTS["run_name"])


def add_multitask_flags(p: argparse.ArgumentParser, spec: ScriptSpec) -> None:
    """Loss weights, weighting and missing-task strategies, the teacher, and the manifold regularisers."""
    g = p.add_argument_group("multi-task: loss weights and missing-task strategy")
    for slot in (*spec.slots, *spec.optional_slots):
        for t in DATASET_SLOTS[slot]:
            flag = LOSS_WEIGHT_FLAGS[t]
            if not any(a.dest == flag for a in p._actions):
                g.add_argument(f"--{flag}", type=float, default=spec.defaults.get(flag, 1.0),
                               help=f"loss weight of {t}")
    g.add_argument("--weighting", default=RUN_DEFAULTS["weighting"], choices=tuple(WEIGHTINGS),
                   help="loss-weighting strategy (utils/weighting.py): fixed = the *_loss_weights flags")
    g.add_argument("--weighting_lr", type=float, default=RUN_DEFAULTS["weighting_lr"],
                   help="step size of the strategy's own parameters (uncertainty, GradNorm, FAMO)")
    _bool(g, "is_naive", help="no targets for the missing task (All-in-one / naive alternation)")
    _bool(g, "is_distilled", help="missing task = distilled soft labels softmax(z/T) (DML-LWF, Distilling)")
    _bool(g, "is_pesudo", help="missing task = selected pseudo labels (MTL-SA)")
    _bool(g, "is_MRF", help="with --is_pesudo: DCN-AP, labels propagated from the labelled dataset over a "
                            "kNN graph of both datasets, then refined with an MRF (mean field)")
    _bool(g, "is_LTN", help="with --is_pesudo: LEL-LTN, a label embedding layer and a label transfer network "
                            "in the model; the network's transferred labels are the pseudo labels")
    g.add_argument("--missing", default=None, choices=tuple(MISSING_TASKS),
                   help="missing-task strategy by name (utils/missing/; instead of the is_* flags above)")
    for f in strategy_flags():
        default = spec.defaults.get(f.name, f.default if f.default is not None
                                    else PSEUDO_DEFAULTS[f.field or f.name])
        if f.type is bool:
            _bool(g, f.name, default=default, help=f.help)
        else:
            g.add_argument(f"--{f.name}", type=f.type, default=default, help=f.help)
    _bool(g, "plot_pseudo", help="write pseudo-label weight histograms and t-SNE plots to RUN/pseudo/")
    g.add_argument("--warmup_epochs", type=int, default=RUN_DEFAULTS["warmup_epochs"],
                   help="joint zero-fill epochs before pseudo labels / alternation start (0 = reference EP)")
    g.add_argument("--teacher_margin", type=float, default=RUN_DEFAULTS["teacher_margin"],
                   help="a task's pseudo / distilled labels start once the teacher's validation balanced "
                        "accuracy is this far above chance (negative: from the first epoch)")
    g = p.add_argument_group("manifold regularisers (SFSMR / SLRM)")
    _bool(g, "is_lnorm", help="SFSMR: l2,1 norm of the stacked task-head weight matrices (joint feature "
                              "selection)")
    _bool(g, "is_trace_norm", help="SLRM: trace norm of the stacked task-head weight matrices (low rank)")
    _bool(g, "is_nuclear_norm", help="sum of the per-task nuclear norms of the head weight matrices")
    _bool(g, "is_manifold", default=spec.manifold, help="graph-Laplacian smoothness of predictions")
    g.add_argument("--manifold_weights", type=float, default=0.01,
                   help="weight of the Laplacian term")
    g.add_argument("--norm_weights", type=float, default=0.3,
                   help="weight of each enabled norm, as its share of the loss at initialisation (each "
                        "norm is divided by its initial value; models/regularizers.py)")
    g.add_argument("--manifold_sigma", type=float, default=0.5, help="RBF width on L2-normalised features")


_FLAG_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def normalise_argv(argv: list, parser: argparse.ArgumentParser) -> list:
    """Accept the seed command lines' typos, saying so on stderr.

    * ``distill_t=2`` (no dashes) becomes ``--distill_t=2`` when ``distill_t`` is a known flag;
    * ``--is_pesudo=False--is_interpolation=False`` (missing space) is split into two flags.
    """
    known = {a.dest for a in parser._actions}
    out = []
    for tok in argv:
        parts = re.split(r"(?<=[^-\s])(?=--[A-Za-z_][A-Za-z0-9_]*=)", tok) if tok.startswith("--") else [tok]
        if len(parts) > 1 and all(re.match(r"--([A-Za-z_]\w*)=", q) and q[2:].split("=")[0] in known for q in parts):
            print(f"note: read '{tok}' as '{' '.join(parts)}'", file=sys.stderr)
        else:
            parts = [tok]
        for part in parts:
            m = _FLAG_RE.match(part)
            if m and m.group(1) in known:
                print(f"note: read '{part}' as '--{part}'", file=sys.stderr)
                part = f"--{part}"
            out.append(part)
    return out


RESUMABLE = {"epoch", "rounds", "patience", "early_stopping_patience", "data_dir", "cache_mb", "disk_cache",
             "image_check", "skip_bad_images", "keep_checkpoints"}  # flags a resumed run may change (recorded)


def given_flags(tokens: list, parser: argparse.ArgumentParser) -> set:
    """Destinations of the flags written on the command line (not defaulted)."""
    by_option = {opt: act.dest for act in parser._actions for opt in act.option_strings}
    return {by_option[t.split("=", 1)[0]] for t in tokens if t.split("=", 1)[0] in by_option}


def unknown_flag_message(token: str, parser: argparse.ArgumentParser) -> str:
    import difflib

    flag = token.split("=", 1)[0]
    options = [o for act in parser._actions for o in act.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
    return f"unrecognised argument {flag}" + (f"; did you mean {close[0]}?" if close else "; see --help")


def single_task_of(dataset: str, data_dir: str | None):
    """The one task a dataset labels (registry, or the columns of its CSV), else None."""
    from utils.datasets import csv_path_for
    from utils.tasks import DATASETS, canonical_name

    name = canonical_name(dataset)
    if name in DATASETS:
        tasks = DATASETS[name].tasks
    else:
        csv = csv_path_for(dataset, data_dir)
        if not csv.is_file():
            return None
        import pandas as pd

        tasks = [t for t in TASKS if t in pd.read_csv(csv, nrows=0).columns]
    return tasks[0] if len(tasks) == 1 else None


def check_method_flags(a, given: set, spec: ScriptSpec, parser: argparse.ArgumentParser) -> None:
    """Stop on flags that contradict each other or cannot act in this configuration (one line).

    Values that are merely unused (the seed lines' ``--cluster_k=0`` without the distribution weight)
    pass; a flag that would be silently dropped or replaced does not.
    """
    from models.registry import head_kind

    problems = []
    for flag in ("augment_zoom", "augment_low_res", "augment_surround"):  # parts of the augmentation
        if getattr(a, flag) and not a.is_augmentation:
            problems.append(f"--{flag}={getattr(a, flag):g} acts only with --is_augmentation=True")
    for flag in ("augment_low_res", "augment_surround"):
        if not 0.0 <= getattr(a, flag) <= 1.0:
            problems.append(f"--{flag}={getattr(a, flag):g} is a share of the images, in [0, 1]")
    if a.precise_bn and spec.mode == "alternating" and a.warmup_epochs == 0:
        problems.append("--precise_bn acts on joint epochs and this alternating run has none (--warmup_epochs=0); "
                        "its one-dataset epochs take their statistics from --bn_stats")
    conv = head_kind(a.model) != "dense"
    if a.is_bn and conv:
        problems.append(f"--is_bn=True: {a.model} has no dense layers to normalise (its trunk has BatchNorm)")
    if "cross_stitch" in given and a.cross_stitch and conv:
        problems.append(f"--cross_stitch=True: {a.model} has no task branches to stitch")
    if spec.mode != "stl":
        modes = [f for f in ("is_naive", "is_distilled", "is_pesudo") if getattr(a, f)]
        if len(modes) > 1:
            problems.append(f"{' and '.join('--' + m + '=True' for m in modes)} contradict each other; "
                            f"choose one missing-task strategy")
        for flag in ("is_MRF", "is_LTN"):
            if getattr(a, flag) and not a.is_pesudo:
                problems.append(f"--{flag}=True refines pseudo labels and needs --is_pesudo=True")
        problems += strategy_flag_problems(a, given)
        strategy = chosen_strategy(a)
        fixed = a.weighting == RUN_DEFAULTS["weighting"]
        if strategy == "lel_ltn" and (not fixed or a.distribute == "multiworker"):
            problems.append("LEL-LTN trains its transfer network with the compiled losses: use "
                            "--weighting=fixed and no --distribute=multiworker")
        if a.pose_kind == "degrees" and strategy in ("lel_ltn", "dcn_ap"):
            problems.append(f"{'DCN-AP' if strategy == 'dcn_ap' else 'LEL-LTN'} transfers class labels; with "
                            f"--pose_kind=degrees use the MTL-SA, distilled or naive strategy")
        if a.is_MRF and a.is_LTN:
            problems.append("--is_MRF=True and --is_LTN=True are two different methods (DCN-AP, LEL-LTN)")
        if a.is_pesudo_distribution and a.cluster_k < 1:
            problems.append(f"--cluster_k={a.cluster_k}: the distribution weight needs at least 1 GMM component")
        if not fixed and (a.distribute == "multiworker" or a.mixed_precision):
            problems.append(f"--weighting={a.weighting} does not run with --distribute=multiworker or "
                            f"--mixed_precision (use --weighting=fixed)")
        uses_t = strategy == "distilled" or (strategy != "naive" and (a.is_interpolation or a.distill_unselected))
        if uses_t and a.distill_t <= 0:
            problems.append(f"--distill_t={a.distill_t:g}: the distillation temperature must be positive")
    if problems:
        parser.error("; ".join(problems))


def chosen_strategy(a, missing: bool = True) -> str:
    """The strategy named by ``--missing`` (unless ``missing`` is False) or by the is_* flags."""
    from utils.pseudo_labels import PseudoConfig

    return (missing and a.missing) or PseudoConfig(
        is_naive=a.is_naive, is_distilled=a.is_distilled, is_pesudo=a.is_pesudo, is_interpolation=a.is_interpolation,
        is_MRF=a.is_MRF, is_LTN=a.is_LTN).strategy_name


def strategy_flag_problems(a, given: set) -> list:
    """Flags of another strategy than the chosen one, written on the line: they would do nothing.

    The MTL-SA and distillation flags are exempt: the seed lines write them with every strategy.
    """
    from utils.missing import strategy_classes

    classes = strategy_classes()
    chosen = classes[chosen_strategy(a)]
    own = {f.name for c in chosen.__mro__ for f in getattr(c, "flags", ())}
    shared = {f.name for n in ("mtl_sa", "distilled") for f in classes[n].flags}
    problems = []
    for name, cls in classes.items():
        inert = sorted(f.name for f in cls.flags if f.name in given and f.name not in own | shared)
        if inert:
            problems.append(f"{', '.join('--' + f for f in inert)} act only with --missing={name}")
    if a.missing:
        legacy = [f for f in ("is_naive", "is_distilled", "is_pesudo", "is_MRF", "is_LTN") if getattr(a, f)]
        if legacy and chosen_strategy(a, missing=False) != a.missing:
            problems.append(f"--missing={a.missing} contradicts {', '.join('--' + f + '=True' for f in legacy)}")
    return problems


def parse_config(script: str, argv: list | None = None):
    """Parse a script's command line into a ``RunConfig``."""
    return parse_command(script, argv)[0]


def parse_command(script: str, argv: list | None = None):
    """Parse a script's command line into ``(RunConfig, resume run folder or None)``."""
    return parse_flags(script, argv)[:2]


def parse_flags(script: str, argv: list | None = None):
    """``(RunConfig, resume run folder or None, destinations of the flags written on the line)``."""
    from utils.tasks import canonical_name

    spec = SCRIPTS[script]
    parser = build_parser(script)
    tokens = normalise_argv(list(sys.argv[1:] if argv is None else argv), parser)
    a, unknown = parser.parse_known_args(tokens)
    if unknown:
        parser.error(unknown_flag_message(unknown[0], parser))
    given = given_flags(tokens, parser)
    if a.resume:
        extra = sorted(given - RESUMABLE - {"resume"})
        if extra:
            parser.error(f"--resume continues a run with its own configuration; it takes only "
                         f"{', '.join('--' + f for f in sorted(RESUMABLE))}; not: "
                         f"{', '.join('--' + f for f in extra)}")
    check_method_flags(a, given, spec, parser)
    if spec.mode == "stl":
        task = a.task or TASK_TYPE_CODES[a.task_type]
        if not ({"task", "task_type"} & given):
            only = single_task_of(a.dataset, a.data_dir)
            if only and only != task:
                print(f"note: no --task_type given and {a.dataset} labels only {only}: training {only}",
                      file=sys.stderr)
                task = only
        datasets = [[canonical_name(a.dataset), [task]]]
        fields = dict(loss_weights={}, pseudo=PseudoConfig(seed=a.seed), regularization={}, warmup_epochs=0)
    else:
        datasets = [[canonical_name(getattr(a, slot)), list(DATASET_SLOTS[slot])]
                    for slot in (*spec.slots, *spec.optional_slots)
                    if getattr(a, slot) and getattr(a, slot).lower() != NO_DATASET]
        if len(datasets) < 2:
            parser.error(f"a multi-task run needs at least two datasets; got {len(datasets)} "
                         f"(--dataset_<task>={NO_DATASET} leaves a default one out)")
        loss_weights = {t: getattr(a, LOSS_WEIGHT_FLAGS[t]) for _, ts in datasets for t in ts}
        values = {f.field or f.name: getattr(a, f.name) for f in strategy_flags()}
        values["cluster_k"] = max(1, values["cluster_k"])  # the seed lines' cluster_k=0: inert there
        values["distill_t"] = values["distill_t"] if values["distill_t"] > 0 else 1.0  # ... and distill_t=0
        pseudo = PseudoConfig(
            is_naive=a.is_naive, is_distilled=a.is_distilled, is_pesudo=a.is_pesudo, is_MRF=a.is_MRF,
            is_LTN=a.is_LTN, strategy=a.missing or "", seed=a.seed,
            **{k: v for k, v in values.items() if k in PSEUDO_DEFAULTS},
            options={k: v for k, v in values.items() if k not in PSEUDO_DEFAULTS})
        if not 0.0 <= a.selection_threshold <= 1.0:
            parser.error(f"--selection_threshold must be a quantile in [0, 1], got {a.selection_threshold}")
        regularization = {k: w for k, on, w in (
            ("l21", a.is_lnorm, a.norm_weights), ("trace", a.is_trace_norm, a.norm_weights),
            ("nuclear", a.is_nuclear_norm, a.norm_weights), ("laplacian", a.is_manifold, a.manifold_weights))
            if on and w > 0}
        if regularization:
            regularization["sigma"] = a.manifold_sigma
        fields = dict(loss_weights=loss_weights, pseudo=pseudo, regularization=regularization)
    if a.vggface_weights:
        a.weights = a.vggface_weights
    a.weights = a.weights or ("pretrained" if a.model == "vggFace" else "none")
    if a.epoch < 1 or a.batch_size < 1 or (a.rounds is not None and a.rounds < 1):
        parser.error("--epoch, --rounds and --batch_size must be positive")
    if a.run_name is not None and (not a.run_name.strip() or a.run_name.strip(".") == ""
                                   or any(c in a.run_name for c in "/\\") or Path(a.run_name).is_absolute()):
        parser.error(f"--run_name {a.run_name!r}: a run name is one folder name inside "
                     f"{a.output_dir}/{script}/ (no '/', '\\', '.' or '..')")
    # every other RunConfig field is the flag of the same name (scripts without it keep the default)
    fields.update({f: getattr(a, f) for f in RUN_DEFAULTS if f not in fields and hasattr(a, f)})
    return RunConfig(script=script, mode=spec.mode, datasets=datasets, **fields), a.resume, given


def ensure_toy_data(cfg) -> None:
    """The built-in synthetic datasets are generated on first use (a few seconds)."""
    from utils.datasets import csv_path_for, default_data_dir
    from utils.synthetic_faces import STYLES, write_toy

    missing = [n for n, _ in cfg.datasets if n in STYLES and not csv_path_for(n, cfg.data_dir).exists()]
    if missing:
        root = cfg.data_dir or default_data_dir()
        print(f"note: generating the synthetic datasets {', '.join(missing)} under {root}", file=sys.stderr)
        write_toy(root, datasets=missing)


def missing_datasets(cfg) -> str | None:
    """One line naming every dataset of the run whose cleaned CSV is missing (before TensorFlow loads)."""
    from utils.datasets import csv_path_for, missing_hint
    from utils.synthetic_faces import STYLES

    missing = [(n, csv_path_for(n, cfg.data_dir)) for n, _ in cfg.datasets if n not in STYLES]
    missing = [(n, p) for n, p in missing if not p.is_file()]
    if not missing:
        return None
    return "; ".join(f"dataset '{n}': {p} not found; {missing_hint(n)}" for n, p in missing)


class Stopped(Exception):
    """Ctrl-C or SIGTERM: the run stops; its last finished epoch is saved."""


def _stop_on_sigterm(signum, frame):
    raise Stopped("SIGTERM")


def main(script: str, argv: list | None = None) -> int:
    """Entry point of the training scripts: parse and check the data files (before TensorFlow is imported,
    so that --help, usage and missing-data errors are instant), train, and turn data and disk problems
    into one-line errors. Ctrl-C and SIGTERM stop with one line that says how to resume."""
    import signal

    cfg, resume, given = parse_flags(script, argv)
    if not resume and (problem := missing_datasets(cfg)):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    from models import WeightsError, import_tensorflow_quietly

    import_tensorflow_quietly()
    from utils.datasets import DataError
    from utils.engine import config_from_run, train
    from utils.logs import setup_logging
    from utils.run_dir import RunFolderError

    setup_logging()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    state = {}
    try:
        if resume:
            if not (Path(resume) / "config.json").is_file():
                raise DataError(f"--resume {resume}: not a run folder (no config.json)")
            cfg = resumed_config(config_from_run(resume), cfg, given, Path(resume))
        ensure_toy_data(cfg)
        train(cfg, resume=bool(resume), state=state)
    except (DataError, WeightsError, FloatingPointError, RunFolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk, permissions: one line naming the file
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stopped) as exc:
        why = "SIGTERM" if isinstance(exc, Stopped) else "Ctrl-C"
        run = state.get("run")
        if run is None or not (Path(run) / "state.json").exists():
            print(f"stopped by {why} before the first epoch finished; nothing to resume", file=sys.stderr)
        else:
            print(f"stopped by {why}; the last finished epoch is saved: continue with "
                  f"python {script}.py --resume {run}", file=sys.stderr)
        return 143 if why == "SIGTERM" else 130
    except Exception as exc:  # noqa: BLE001 - only a multi-worker run's lost peer is turned into one line
        import tensorflow as tf

        if cfg.distribute != "multiworker" or not isinstance(exc, tf.errors.OpError):
            raise
        detail = re.sub(r"\{\{[^}]*\}\}\s*", "", str(exc)).strip().splitlines()[0][:120] if str(exc).strip() else ""
        run = state.get("run")
        saved = (f"the last finished epoch is saved: start every worker again with --resume {run}"
                 if run and (Path(run) / "state.json").exists() else "no epoch had finished")
        print(f"error: the multi-worker run lost a worker or its connection ({type(exc).__name__}: {detail}); "
              f"{saved}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def resumed_config(saved, new, given: set, run: Path):
    """The saved configuration with the resumable flags written on the command line applied and
    recorded in the run's config.json (``resumed_with``)."""
    import dataclasses
    import json

    from utils.run_dir import atomic_write_text

    changes = {f: getattr(new, f) for f in sorted(given & RESUMABLE) if getattr(new, f) != getattr(saved, f)}
    if not changes:
        return saved
    print("note: resuming with " + ", ".join(f"--{k}={v}" for k, v in changes.items()), file=sys.stderr)
    data = json.loads((run / "config.json").read_text())
    data.update(changes)
    data.setdefault("resumed_with", []).append(changes)
    atomic_write_text(run / "config.json", json.dumps(data, indent=2) + "\n")
    return dataclasses.replace(saved, **changes)
