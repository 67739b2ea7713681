"""The shared command-line convention: one line naming the flag, exit code 2."""

import pytest

from sciml.cli import EXIT_BAD_INPUT, OneLineParser, fail_for_field, flag_message

FLAGS = {"n_train": "--n-train", "lo": "--range"}


def test_a_field_becomes_its_flag_and_other_text_is_kept():
    assert flag_message(ValueError("n_train: must be an integer >= 0, got -1"), FLAGS) == \
        "--n-train: must be an integer >= 0, got -1"
    assert flag_message(ValueError("width: must be >= 1"), FLAGS) == "width: must be >= 1"
    assert flag_message(ValueError("no field here"), FLAGS) == "no field here"


def test_failures_exit_2_on_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        fail_for_field("prog", ValueError("lo: must be > 0,\ngot -1"), FLAGS)
    assert exit_info.value.code == EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err == "prog: error: --range: must be > 0, got -1\n"
    parser = OneLineParser(prog="prog")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--n", "x"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("prog: error: ") and "--n" in lines[0]
