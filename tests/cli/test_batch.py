"""`batch submit|status|collect` through the real CLI: round trip, and errors as one line on stderr."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.llm.store.cache import ResponseCache

SPLIT = "val2014"


def test_cli_round_trip(fake_openai, coco_root, tmp_path, capsys):
    cache = str(tmp_path / "c.db")
    url = ["--base-url", fake_openai.base_url]
    selection = ["--task", "detailed_description", "--coco-root", str(coco_root), "--split", SPLIT, "--limit", "3"]
    assert main(["batch", "submit", *selection, "--cache", cache, *url]) == 0
    assert "submitted 3 requests in 1 batch: " in capsys.readouterr().out
    fake_openai.complete_batches()
    assert main(["batch", "status", "--cache", cache, *url]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["batch", "collect", "--cache", cache, *url]) == 0
    assert "collected 1 batch: 3 answers added" in capsys.readouterr().out
    assert main(["batch", "collect", "--cache", cache, *url]) == 0
    assert "collected 0 batches: 0 answers added" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["status", "collect"])
def test_cli_status_or_collect_of_a_missing_cache_is_one_line(tmp_path, capsys, action):
    code = main(["batch", action, "--cache", str(tmp_path / "none.db"), "--base-url", "http://127.0.0.1:9/v1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and "none.db" in err
    assert "`keypoint-instruct batch submit`" in err and "generate" not in err
    assert not (tmp_path / "none.db").exists()


def test_cli_unreachable_endpoint_is_one_line(coco_root, tmp_path, capsys):
    args = ["batch", "submit", "--task", "conversation", "--coco-root", str(coco_root), "--split", SPLIT]
    code = main([*args, "--limit", "1", "--cache", str(tmp_path / "c.db"), "--base-url", "http://127.0.0.1:9/v1"])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert code == 2 and len(err) == 1 and "Batch API: uploading" in err[0] and "Traceback" not in err[0]


def test_cli_wrong_key_is_one_line_without_the_key(fake_openai, coco_root, tmp_path, capsys, monkeypatch):
    secret = "sk-proj-DO-NOT-LEAK-4f2e9a"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    fake_openai.set_access(api_key="sk-the-right-one")
    args = ["batch", "submit", "--task", "conversation", "--coco-root", str(coco_root), "--split", SPLIT]
    code = main([*args, "--limit", "1", "--cache", str(tmp_path / "c.db"), "--base-url", fake_openai.base_url])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO ")]
    assert code == 2 and len(err) == 1 and "HTTP 401" in err[0] and "Traceback" not in err[0], err
    assert secret not in err[0] and secret[-4:] not in err[0] and "<redacted key>" in err[0]


def test_cli_batch_without_key_names_only_its_own_options(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ResponseCache(tmp_path / "c.db", create=True).close()
    code = main(["batch", "status", "--cache", str(tmp_path / "c.db")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "OPENAI_API_KEY" in err and "--base-url" in err
    assert "--teacher" not in err  # batch commands have no offline teacher
