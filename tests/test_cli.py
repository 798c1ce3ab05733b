"""Every seed command line is accepted as written and ends in a clear data error without data."""
import re
import shlex
from pathlib import Path

import pytest

from utils.cli import SCRIPTS, build_parser, main, normalise_argv, parse_config

SEEDS = [line for line in (Path(__file__).parent / "seed_commands.txt").read_text().splitlines()
         if line.startswith("python ")]
TRAINING = [s for s in SEEDS if not s.split()[1].startswith("final_")]


def split(line):
    words = shlex.split(line)
    return words[1].removesuffix(".py"), words[2:]


@pytest.mark.parametrize("line", TRAINING)
def test_seed_command_parses(line):
    script, argv = split(line)
    cfg = parse_config(script, argv)
    written = dict(re.match(r"--?([A-Za-z_]+)=(\S*)", w).groups() for w in argv if re.match(r"--?\w+=", w))
    assert cfg.script == script
    assert cfg.epoch == int(written.get("epoch", 64)) and cfg.batch_size == int(written.get("batch_size", 32))
    assert cfg.model == written.get("model", "mini_xception")
    given = {slot.removeprefix("dataset_"): name.lower() for slot, name in written.items()
             if slot.startswith("dataset")}
    if script == "STL_general_train":
        assert cfg.datasets[0][0] == given.get("dataset", "imdb")
    else:
        assert {t: n for n, ts in cfg.datasets for t in ts} == given  # each slot's dataset, as written
    expected = ("naive" if written.get("is_naive") == "True" else "distilled" if written.get("is_distilled") == "True"
                else "dcn_ap" if written.get("is_MRF") == "True" else "mtl_sa" if written.get("is_pesudo", "")
                .startswith("True") else "naive")
    assert cfg.pseudo.strategy_name == expected


def test_seed_typos_are_read_as_intended():
    cfg = parse_config(*split(TRAINING[2]))  # --is_distilled=True distill_t=1 --is_pesudo=False--is_interpolation=False
    assert cfg.pseudo.distill_t == 1.0 and cfg.pseudo.mode == "distilled"
    assert cfg.pseudo.is_pesudo is False and cfg.pseudo.is_interpolation is False
    sa = parse_config(*split(TRAINING[1]))
    assert sa.pseudo.mode == "pseudo" and sa.pseudo.selection_threshold == 0.8 and sa.pseudo.cluster_k == 3
    assert sa.datasets == [["expw", ["emotion"]], ["aflw", ["pose"]]] and sa.loss_weights == {"emotion": 1, "pose": 1}
    mrf = parse_config(*split([s for s in TRAINING if "--is_MRF" in s][0]))
    assert mrf.pseudo.is_MRF and mrf.datasets[0][0] == "sfew"
    slrm = parse_config(*split([s for s in TRAINING if "--is_nuclear_norm" in s][0]))
    assert {"l21", "trace", "nuclear", "laplacian"} <= set(slrm.regularization)


def test_normalise_argv_leaves_ordinary_arguments_alone():
    p = build_parser("ALTERNATIVE_EP")
    assert normalise_argv(["--epoch=3", "--dataset_emotion=a--b"], p) == ["--epoch=3", "--dataset_emotion=a--b"]


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config("ALTERNATIVE_EP", ["--no_such_flag=1"])
    assert e.value.code == 2 and "unrecognised argument --no_such_flag; see --help" in capsys.readouterr().err


@pytest.mark.parametrize("line", TRAINING)
def test_seed_command_without_data_ends_in_a_data_error(line, tmp_path, capsys):
    script, argv = split(line)
    code = main(script, argv + [f"--data_dir={tmp_path}", f"--output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: dataset '" in err and "_cleaned.csv not found" in err and "prep_data.py --dataset" in err


def test_every_script_file_exists():
    root = Path(__file__).resolve().parent.parent
    for script in SCRIPTS:
        assert (root / f"{script}.py").is_file()


@pytest.mark.parametrize("script", ["ALTERNATIVE_EP", "ALTERNATIVE_EA", "ALTERNATIVE_EGA", "CONFUSION_EP_multitask",
                                    "CONFUSION_EPGA_multitask"])
def test_the_papers_selection_is_the_default(script):
    # soft mode: lambda 0 (w' = w); hard mode: rejected rows get distilled labels, masking is a flag
    soft = parse_config(script, ["--is_pesudo=True", "--is_interpolation=True"]).pseudo
    assert soft.interpolation_weights == 0.0
    hard = parse_config(script, ["--is_pesudo=True"]).pseudo
    assert hard.distill_unselected is True
    assert parse_config(script, ["--is_pesudo=True", "--distill_unselected=False"]).pseudo.distill_unselected is False


def test_missing_task_strategies_are_named_by_flag_or_by_the_seed_flags(capsys):
    from utils.missing import strategy_for

    by_name = parse_config("CONFUSION_EP_multitask", ["--missing=dcn_ap", "--ap_k=5"])
    by_flags = parse_config("CONFUSION_EP_multitask", ["--is_pesudo=True", "--is_MRF=True", "--ap_k=5"])
    assert by_name.pseudo.strategy_name == by_flags.pseudo.strategy_name == "dcn_ap"
    assert by_name.method_name() == by_flags.method_name() == "DCN-AP"
    assert type(strategy_for(by_name.pseudo)).__name__ == "DCNAP" and by_name.pseudo.ap_k == 5
    assert parse_config("ALTERNATIVE_EP", ["--is_distilled=True"]).pseudo.strategy_name == "distilled"
    # a strategy's own flags do nothing under another strategy: stop, naming the one they belong to
    with pytest.raises(SystemExit):
        parse_config("CONFUSION_EP_multitask", ["--missing=mtl_sa", "--mrf_k=4", "--ltn_dim=8"])
    err = capsys.readouterr().err
    assert "--mrf_k act only with --missing=dcn_ap" in err and "--ltn_dim act only with --missing=lel_ltn" in err
    with pytest.raises(SystemExit):
        parse_config("CONFUSION_EP_multitask", ["--missing=naive", "--is_pesudo=True"])
    assert "--missing=naive contradicts --is_pesudo=True" in capsys.readouterr().err


def test_every_registered_strategy_declares_flags_the_parser_offers():
    from utils.cli import strategy_flags
    from utils.missing import strategy_classes

    options = {o for a in build_parser("ALTERNATIVE_EP")._actions for o in a.option_strings}
    assert {"naive", "distilled", "mtl_sa", "lel_ltn", "dcn_ap"} <= set(strategy_classes())
    assert {f"--{f.name}" for f in strategy_flags()} <= options
    assert "--missing" in options and "--missing" not in {o for a in build_parser("STL_general_train")._actions
                                                          for o in a.option_strings}


@pytest.mark.parametrize("script", ["CONFUSION_EP_multitask", "ALTERNATIVE_EGA"])
def test_parser_defaults_are_the_config_defaults(script):
    # defaults live in RunConfig / PseudoConfig (and the script's own table); the parser only reads them
    from dataclasses import MISSING, fields

    from utils.engine.config import RunConfig
    from utils.pseudo_labels import PseudoConfig

    cfg, spec = parse_config(script, []), SCRIPTS[script]
    for obj, cls in ((cfg, RunConfig), (cfg.pseudo, PseudoConfig)):
        for f in fields(cls):
            if f.default is MISSING or f.name in spec.defaults:
                continue
            assert getattr(obj, f.name) == f.default, f.name
