"""A head's answers for a uniform prior instead of its training set's (post-hoc logit adjustment).

    python utils/prior_shift.py --model pretrained/four_tasks_mini_xception_64px/model.keras --task pose --out DIR

A softmax head learns its training rows' class prior along with the faces. Where that prior is an
artefact of how the data were collected, it misleads on other photographs: Pointing'04 photographs
13 pans per tilt, one of them (0 degrees) in the frontal bin, so a yaw head trained on it calls
frontal about 1 face in 10 a priori, while most photographs are frontal. This script adds
``-log prior`` to the head's logits (``utils.calibration.prior_offsets``: Saerens et al. 2002, Menon et
al. ICLR 2021 sec. 4), with the prior counted on the training part of the dataset that labels the task
(reproduced from the model's config.json, ``utils.evaluate.select_rows``) and weighted by the run's
``--class_balance``. The offsets go into the head's last bias (``models.net.shift_logits``), so the
written model, its exports, ``utils/evaluate.py`` and the demos all answer alike; config.json records
them and drops the task's temperature, which must be fitted again (``utils/model_card.py
--write_temperatures``). Writes ``model.keras`` and ``config.json`` to ``--out``; the input is untouched.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils  # noqa: E402,F401  (TensorFlow switches)
from utils.datasets import DataError  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=".keras model with its run's config.json beside it")
    p.add_argument("--task", default="pose", help="the head to shift (a classification head)")
    p.add_argument("--out", required=True, help="folder for the shifted model.keras and config.json")
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    out = Path(a.out)
    try:
        if Path(a.model).suffix != ".keras":
            raise DataError(f"{a.model}: shift the .keras model, then export it (a .tflite's weights are fixed)")
        if out.resolve() == Path(a.model).resolve().parent:
            raise DataError(f"--out {out}: the model's own folder; write the shifted model elsewhere")
        from models import WeightsError, import_tensorflow_quietly

        import_tensorflow_quietly()
        from models import shift_logits
        from utils.calibration import prior_offsets
        from utils.evaluate import head_widths, labelling_dataset, load_model_and_config, select_rows
        from utils.targets import BALANCE_POWER

        net, config, _ = load_model_and_config(None, a.model)
        if a.task in config.get("prior_shift", {}):
            raise DataError(f"{a.model}: its '{a.task}' head is already shifted (config.json prior_shift)")
        source = labelling_dataset(config, a.task, a.model)
        heads = head_widths(net)
        train, _, _ = select_rows(heads, config, source, "train", [a.task], a.data_dir)
        labels = train.labels[a.task]
        counts = np.bincount(labels[labels >= 0], minlength=heads[a.task])
        power = BALANCE_POWER[config.get("class_balance", "none")]
        try:
            offsets = prior_offsets(counts, power)
            shift_logits(net, a.task, offsets)
        except (ValueError, WeightsError) as exc:
            raise DataError(f"'{a.task}': {exc}") from None
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    config.setdefault("prior_shift", {})[a.task] = {
        "dataset": source, "train_counts": counts.tolist(), "class_balance": config.get("class_balance", "none"),
        "offsets": [round(float(v), 6) for v in offsets]}
    config.get("temperatures", {}).pop(a.task, None)  # fitted to the unshifted head
    net.save(out / "model.keras")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    names = config.get("class_names", {}).get(a.task) or [str(c) for c in range(len(counts))]
    print(f"'{a.task}' prior from {source}'s {int(counts.sum())} training rows ({config.get('class_balance', 'none')} "
          f"class balance); logit offsets: " + ", ".join(f"{n} {v:+.3f}" for n, v in zip(names, offsets)))
    print(f"written: {out / 'model.keras'} and config.json; fit '{a.task}''s temperature again "
          f"(utils/model_card.py --write_temperatures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
