"""The response cache: exactly-once writes, failures, ordering, stats, several writer processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.errors import CacheError, InputNotFoundError
from keypoint_instruct.llm.request import ChatRequest, Completion, GenerationSettings
from keypoint_instruct.llm.store.cache import ResponseCache


def make_request(image_id: int, task: str = "conversation", text: str = "ctx") -> ChatRequest:
    body = GenerationSettings().body([{"role": "user", "content": f"{text} {image_id}"}])
    return ChatRequest(task=task, item_id=image_id, collection="val2014", prompt_version="v1", body=body)


def make_completion(text: str = "Question:\nQ?\n===\nAnswer:\nA.", finish: str = "stop", cached: int = 0):
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=1000,
        completion_tokens=200,
        cached_tokens=cached,
        model="gpt-4o-2024-08-06",
    )


def test_key_ignores_scene_and_metadata_but_not_settings():
    a = make_request(1)
    b = ChatRequest(task="other", item_id=9, collection="x", prompt_version="v2", body=a.body)
    assert a.key == b.key and len(a.key) == 64
    hotter = GenerationSettings(temperature=0.9).body(a.body["messages"])
    assert ChatRequest("conversation", 1, "val2014", "v1", hotter).key != a.key


def test_put_commits_now_and_is_exactly_once(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, create=True)
    request = make_request(1)
    first = cache.put(request, make_completion("first"), 0.5)
    # another connection (another process would do the same) sees it without any close or flush
    other = ResponseCache(path)
    assert other.get(request.key).text == "first"
    second = other.put(request, make_completion("second"), 0.1)
    assert second.text == "first" and second == first
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert rows == 1
    assert first.cost_usd > 0 and first.created_at.endswith("+00:00")


def test_failures_iteration_order_and_stats(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    for image_id in (5, 2, 9):
        cache.put(make_request(image_id, "detailed_description"), make_completion(cached=512), 1.0)
    cache.put(make_request(3), make_completion("cut", finish="length"), 1.0)
    cache.record_failure(make_request(3), "attempt 1: HTTP 500")
    cache.record_failure(make_request(7), "attempt 1: timeout")
    cache.record_failure(make_request(7), "attempt 2: timeout")
    order = [(r.task, r.image_id) for r in cache.iter_responses()]
    assert order == [("conversation", 3)] + [("detailed_description", i) for i in (2, 5, 9)]
    assert [r.image_id for r in cache.iter_responses(task="conversation", coco_split="val2014")] == [3]
    assert [f["reason"] for f in cache.failures(make_request(7).key)] == ["attempt 1: timeout", "attempt 2: timeout"]
    stats = cache.stats()
    assert stats.responses == 4 and stats.failed_attempts == 3 and stats.unanswered_keys == 1
    assert {(r["task"], r["status"]): r["responses"] for r in stats.rows} == {
        ("conversation", "length"): 1,
        ("detailed_description", "ok"): 3,
    }
    assert stats.cached_tokens == 3 * 512 and stats.cached_share == pytest.approx(1536 / 4000)
    assert stats.cost_usd == pytest.approx(sum(r.cost_usd for r in cache.iter_responses()))


def test_missing_foreign_and_corrupt_files(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        ResponseCache(tmp_path / "nope.sqlite")
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    with pytest.raises(CacheError, match="not a keypoint-instruct response cache"):
        ResponseCache(foreign)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CacheError, match="not a readable response cache"):
        ResponseCache(junk)


def test_several_processes_write_one_file(tmp_path):
    """Four processes race over the same 40 keys: every key ends with exactly one answer."""
    path = tmp_path / "shared.sqlite"
    ResponseCache(path, create=True).close()
    script = textwrap.dedent(
        f"""
        import sys
        from tests.llm.store.test_cache import make_request, make_completion
        from keypoint_instruct.llm.store.cache import ResponseCache
        cache = ResponseCache({str(path)!r})
        for image_id in range(40):
            request = make_request(image_id)
            if cache.get(request.key) is None:
                cache.put(request, make_completion("from " + sys.argv[1]), 0.0)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)]) for i in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone() == (40, 40)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_cli_stats_and_merge(tmp_path, capsys):
    a = ResponseCache(tmp_path / "a.sqlite", create=True)
    a.put(make_request(1), make_completion(cached=256), 1.0)
    a.put(make_request(2, "complex_reasoning"), make_completion(finish="content_filter"), 1.0)
    a.close()
    assert main(["cache", "merge", str(tmp_path / "m.sqlite"), str(tmp_path / "a.sqlite")]) == 0
    assert "2 responses added" in capsys.readouterr().out
    assert main(["cache", "stats", "--cache", str(tmp_path / "m.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "complex_reasoning" in out and "content_filter" in out and "conversation" in out
    assert "cached-token share of prompt tokens: 12.8%" in out
    for argv in (
        ["cache", "stats", "--cache", str(tmp_path / "none.sqlite")],
        ["cache", "merge", str(tmp_path / "m.sqlite"), str(tmp_path / "none.sqlite")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "none.sqlite" in err and "Traceback" not in err


def test_two_runs_creating_one_cache_at_once_both_open_it(tmp_path):
    """A second opener of a cache that another run is creating right now waits for it instead of failing."""
    import threading

    from keypoint_instruct.llm.store.cache import _APPLICATION_ID, _schema

    path = tmp_path / "new.sqlite"
    creator = sqlite3.connect(path, isolation_level=None)  # another run, half-way through creating the file
    creator.execute("BEGIN IMMEDIATE")
    for statement in _schema().split(";"):
        creator.execute(statement)
    creator.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    opened: list[object] = []
    opener = threading.Thread(target=lambda: opened.append(_open_or_error(path)))
    opener.start()
    opener.join(0.3)  # it must wait for the creator, not fail at once
    creator.execute("COMMIT")
    creator.close()
    opener.join(30)
    [cache] = opened
    assert isinstance(cache, ResponseCache), cache
    cache.put(make_request(1), make_completion(), 0.1)
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal" and cache.stats().responses == 1
    cache.close()


def _open_or_error(path):
    try:
        return ResponseCache(path, create=True)
    except CacheError as err:
        return err


def test_each_answer_keeps_the_sampling_settings_of_its_request(tmp_path):
    """They are part of the body, so of the key: stored with the answer, they say what it was asked with."""
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        plain = cache.put(make_request(1), make_completion(), 0.1)
        hot = GenerationSettings(temperature=0.9, top_p=0.5, seed=None).body([{"role": "user", "content": "x"}])
        stored = cache.put(ChatRequest("conversation", 2, "val2014", "v1", hot), make_completion(), 0.1)
        assert plain.sampling == {"max_tokens": 1024, "seed": 42, "temperature": 0.2}
        assert stored.sampling == {"max_tokens": 1024, "temperature": 0.9, "top_p": 0.5}
        assert [r.sampling for r in cache.iter_responses()] == [plain.sampling, stored.sampling]
        assert cache.get(stored.key) == stored


def test_answers_stored_before_schema_4_say_their_settings_were_not_recorded(tmp_path, capsys):
    from tests.llm.store.test_claims import write_schema_1_cache

    path = tmp_path / "old.sqlite"
    write_schema_1_cache(path)
    with ResponseCache(path) as cache:  # upgraded in place: the answer stays, without settings
        [old] = cache.iter_responses()
        assert old.text == "text" and old.settings is None and old.sampling is None
        cache.put(make_request(1), make_completion(), 0.1)
    assert main(["cache", "stats", "--cache", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "not recorded (answered before schema 4): 1" in out and "temperature 0.2, max_tokens 1024, seed 42: 1" in out
    )
