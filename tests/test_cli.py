"""Every seed command line is accepted as written and ends in a clear data error without data."""
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
    assert cfg.script == script and cfg.epoch == (64 if argv else 64)


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
