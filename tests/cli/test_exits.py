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


# --------------------------------------------------------------------------- one regression test per code and case


def _generate(coco_root, tmp_path, url, *extra) -> list[str]:
    select = ["--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014", "--limit", "3"]
    run = ["--cache", str(tmp_path / "c.sqlite"), "--base-url", url, "--max-attempts", "2", "--no-progress"]
    return ["generate", *select, *run, *extra]


def _one_message(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "DEBUG ", "WARNING "))]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_done_is_0(fake_openai, coco_root, tmp_path):
    assert main(_generate(coco_root, tmp_path, fake_openai.base_url)) == DONE


def test_requests_given_up_after_their_attempts_are_1(fake_openai, coco_root, tmp_path, capsys):
    failing = []  # the second request to arrive fails every time; the others are answered

    def rule(body):
        if len(failing) < 2:
            failing.append(body["messages"])
        return "500" if body["messages"] == failing[-1] and len(failing) == 2 else None

    fake_openai.set_faults(rule=rule)
    assert main(_generate(coco_root, tmp_path, fake_openai.base_url)) == STOPPED_SHORT
    assert "2 answered (stop 2), 1 gave up" in capsys.readouterr().out


def test_an_endpoint_that_answers_nothing_is_1_not_2(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_faults(rule=lambda body: "500")  # it ran and retried; nothing says the input is wrong
    assert main(_generate(coco_root, tmp_path, fake_openai.base_url)) == STOPPED_SHORT
    assert "no request has been answered yet" in _one_message(capsys.readouterr().err)


def test_a_refusal_found_by_the_first_request_is_2(fake_openai, coco_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456")
    fake_openai.set_access(api_key="sk-right-key-000000")
    assert main(_generate(coco_root, tmp_path, fake_openai.base_url)) == BAD_INPUT
    assert "HTTP 401" in _one_message(capsys.readouterr().err) and len(fake_openai.log()) == 1


def test_a_base_url_that_cannot_be_an_api_root_is_2_before_anything_is_sent(coco_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(_generate(coco_root, tmp_path, "http://127.0.0.1:9"))
    assert caught.value.code == BAD_INPUT and "has no path" in _one_message(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def _bench_build(coco_root, tmp_path, url, images: int) -> list[str]:
    return ["bench", "build", "--coco-root", str(coco_root), "--images", str(images), "--out", str(tmp_path / "b")] + [
        "--cache", str(tmp_path / "bench.sqlite"), "--base-url", url
    ]  # fmt: skip


def test_bench_build_that_paid_for_too_few_usable_answers_is_1(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_responder(lambda body: "Nothing here reads as a question or a description.")
    assert main(_bench_build(coco_root, tmp_path, fake_openai.base_url, 2)) == STOPPED_SHORT
    err = capsys.readouterr().err
    line = err.splitlines()[-1]  # below the progress bars of its teacher calls
    assert "Traceback" not in err and line.startswith("keypoint-instruct: error: only 0 of 2 images got three usable")
    assert "with all 40 eligible images of val2014 tried" in line
    assert fake_openai.chat_log(ok_only=True)  # it asked, and paid


def test_bench_build_asking_for_more_images_than_there_are_is_2_before_any_call(
    fake_openai, coco_root, tmp_path, capsys
):
    assert main(_bench_build(coco_root, tmp_path, fake_openai.base_url, 10_000)) == BAD_INPUT
    assert "lower --images" in _one_message(capsys.readouterr().err) and not fake_openai.log()
