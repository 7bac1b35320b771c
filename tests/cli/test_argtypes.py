"""The shared argument types: a bad number is argparse's one line and exit code 2, never a traceback later."""

from __future__ import annotations

import argparse

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.cli.argtypes import count, positive_float


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "Infinity", "1e999", "x", ""])
def test_positive_float_refuses_what_is_not_a_finite_positive_number(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_float(text)


def test_positive_float_and_count_accept_what_they_should():
    assert positive_float("0.25") == 0.25 and positive_float("1e3") == 1000.0
    assert count(1)("3") == 3 and count(0)("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
        count(1)("0")


@pytest.mark.parametrize("option", ["--claim-lease", "--request-timeout", "--rpm", "--max-cost"])
def test_an_infinite_value_is_one_line_through_the_cli(coco_root, tmp_path, capsys, option):
    argv = ["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014", "--limit", "1"]
    argv += ["--cache", str(tmp_path / "c.sqlite"), "--teacher", "offline", "--no-progress", option, "inf"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert option in err and "finite" in err
    assert not (tmp_path / "c.sqlite").exists()  # refused before anything was made or sent
