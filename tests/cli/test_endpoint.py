"""The shared endpoint options: ``--base-url`` is checked up front, HTTP request logs only with --verbose."""

from __future__ import annotations

import argparse
import logging

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.cli.endpoint import base_url
from tests.bench.test_judge import SCRIPT, scripted_judge
from tests.bench.test_layout import make_bench, write_answers


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "https://api.example.com/v1",
        " http://localhost:9/v1 ",
        "http://[::1]:8000/v1",
        "https://res.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-10-21",
        "http://localhost:11434/api",  # no /v1: warned about when sent, not refused
    ],
)
def test_base_url_accepts_http_urls_with_a_host(url):
    assert base_url(url) == url.strip()


@pytest.mark.parametrize(
    "url", ["not-a-url", "localhost:8000/v1", "ftp://host/v1", "http://", "http:///v1", "http://host:port/v1", ""]
)
def test_base_url_refuses_the_rest(url):
    with pytest.raises(argparse.ArgumentTypeError, match="http:// or https://"):
        base_url(url)


def _commands(coco_root, tmp_path) -> dict[str, list[str]]:
    cache = ["--cache", str(tmp_path / "c.sqlite")]
    select = ["--task", "all", "--coco-root", str(coco_root), "--split", "val2014", *cache]
    bench = ["--bench", str(tmp_path / "bench")]
    return {
        "generate": ["generate", *select],
        "batch submit": ["batch", "submit", *select],
        "batch status": ["batch", "status", *cache],
        "batch collect": ["batch", "collect", *cache],
        "bench build": ["bench", "build", "--coco-root", str(coco_root), *cache, "--out", str(tmp_path / "b")],
        "bench answer": ["bench", "answer", *bench, "--model", "m", "--backend", "openai", "--out", "a.jsonl"],
        "bench judge": ["bench", "judge", *bench, "--answers", "a.jsonl", *cache, "--out", "r.json"],
    }


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not-a-url", "'not-a-url'"),
        ("http://127.0.0.1:8000", "has no path"),
        ("http://127.0.0.1:8000/v1/chat/completions", "ends in /chat/completions"),
        ("https://res.openai.azure.com/openai/deployments/gpt-4o", "without ?api-version"),
    ],
    ids=["not-a-url", "bare-host", "endpoint-url", "azure-without-version"],
)
@pytest.mark.parametrize(
    "command",
    ["generate", "batch submit", "batch status", "batch collect", "bench build", "bench answer", "bench judge"],
)
def test_every_command_refuses_a_bad_base_url_at_once(coco_root, tmp_path, capsys, command, url, says):
    argv = _commands(coco_root, tmp_path)[command]
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--base-url", url])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--base-url" in err and says in err, err
    assert not list(tmp_path.iterdir())  # nothing was created or sent


def test_a_path_without_v1_is_warned_about_once_and_stops_after_one_request(
    coco_root, tmp_path, capsys, caplog, fake_openai
):
    url = fake_openai.base_url.removesuffix("/v1") + "/api"  # Ollama's own API, not its OpenAI one: 404
    argv = _commands(coco_root, tmp_path)["generate"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--base-url", url, "--no-progress"]) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "has no version segment such as /v1" in warnings[0]
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("keypoint-instruct: error: stopped: HTTP 404") and "--base-url" in err[-1]
    assert len(fake_openai.log()) == 1  # the 404 stopped the run at its first request


def _bench_run(step: str, coco_root, tmp_path, server) -> list[str]:
    if step == "build":
        return ["bench", "build", "--coco-root", str(coco_root), "--images", "2", "--out", str(tmp_path / "b")] + [
            "--cache",
            str(tmp_path / f"{step}.sqlite"),
            "--base-url",
            server.base_url,
        ]
    make_bench(tmp_path / "bench")
    if step == "answer":
        server.set_responder(lambda body: "The skier bends both knees.")
        argv = ["--model", "remote-vlm", "--backend", "openai", "--out", str(tmp_path / "a.jsonl")]
    else:
        write_answers(tmp_path / "answers.jsonl", {qid: text for qid, (text, _, _) in SCRIPT.items()})
        server.set_responder(scripted_judge)
        argv = ["--answers", str(tmp_path / "answers.jsonl"), "--out", str(tmp_path / "r.json")]
        argv += ["--cache", str(tmp_path / "judge.sqlite")]
    return ["bench", step, "--bench", str(tmp_path / "bench"), "--base-url", server.base_url, *argv]


@pytest.mark.parametrize("step", ["build", "answer", "judge"])
def test_bench_steps_log_http_requests_only_when_verbose(coco_root, tmp_path, fake_openai, caplog, capsys, step):
    def http_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("httpx", "httpx2", "openai")]

    with caplog.at_level(logging.INFO):
        assert main(_bench_run(step, coco_root, tmp_path, fake_openai)) == 0
        assert http_lines() == []
        assert fake_openai.chat_log(ok_only=True)  # requests were sent, just not logged
        caplog.clear()
        fake_openai.clear_log()
        assert main(["--verbose", *_bench_run(step, coco_root, tmp_path / "v", fake_openai)]) == 0
        assert any("HTTP Request: POST" in line for line in http_lines())


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_base_url_help_shows_the_azure_form_and_that_a_query_is_sent(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # argparse breaks long URLs anywhere: no wrapping
    text = _help(capsys, "generate")
    assert "https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=VERSION" in text
    assert "a query string such as ?api-version=... is sent with every request" in text
    assert "is sent with every request" in _help(capsys, "batch", "submit")
    for action in ("status", "collect", "cancel", "forget"):
        assert "the --base-url it was submitted with" in _help(capsys, "batch", action)
