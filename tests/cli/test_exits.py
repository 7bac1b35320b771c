"""The exit statuses, defined once: what each means, and that the CLI's paths use them."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.cli.exits import BAD_INPUT, DONE, INTERRUPTED, STOPPED_SHORT, exit_status
from keypoint_instruct.errors import KeypointInstructError


def test_the_codes_are_the_documented_ones():
    assert (DONE, STOPPED_SHORT, BAD_INPUT, INTERRUPTED) == (0, 1, 2, 130)
    assert BAD_INPUT == KeypointInstructError.exit_code
    assert exit_status(stopped_short=False) == DONE and exit_status(stopped_short=True) == STOPPED_SHORT


def test_no_command_and_a_bad_option_are_bad_input(capsys):
    assert main([]) == BAD_INPUT
    with pytest.raises(SystemExit) as caught:
        main(["generate", "--no-such-option"])
    assert caught.value.code == BAD_INPUT
    assert "(see --help)" in capsys.readouterr().err


def test_the_top_level_help_lists_the_exit_statuses(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status: 0 done; 1 ran but stopped short" in out and "2 bad input" in out and "130 interrupted" in out
