"""`cache stats`: the table of answers by task, model and status, and the lines under it."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.stats import status_of
from tests.llm.store.test_cache import make_completion, make_request

TABLE = """\
task               model              status          responses  prompt_tok  cached_tok  completion_tok  usd
complex_reasoning  gpt-4o-2024-08-06  content_filter  1          1000        0           200             0.0045
conversation       gpt-4o-2024-08-06  ok              2          2000        512         400             0.0084
total                                                 3          3000        512         600             0.0129
cached-token share of prompt tokens: 17.1%
failed attempts: 1; keys failed and never answered: 1
money spent: $0.0129
sampling settings of the answers (part of each request, so of its cache key):
  gpt-4o-2024-08-06  temperature 0.2, max_tokens 1024, seed 42: 3
"""
EMPTY = """\
task   model  status  responses  prompt_tok  cached_tok  completion_tok  usd
total                 0          0           0           0               0.0000
cached-token share of prompt tokens: 0.0%
failed attempts: 0; keys failed and never answered: 0
money spent: $0.0000
"""


def test_the_table_has_a_row_per_task_model_and_status_and_a_total(tmp_path, capsys):
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        cache.put(make_request(1), make_completion(cached=512), 1.0)
        cache.put(make_request(2), make_completion(), 1.0)
        cache.put(make_request(3, "complex_reasoning"), make_completion(finish="content_filter"), 1.0)
        cache.record_failure(make_request(4), "attempt 1: HTTP 500")
    assert main(["cache", "stats", "--cache", str(tmp_path / "c.sqlite")]) == 0
    assert capsys.readouterr().out == TABLE


def test_an_empty_cache_has_only_the_total(tmp_path, capsys):
    ResponseCache(tmp_path / "e.sqlite", create=True).close()
    assert main(["cache", "stats", "--cache", str(tmp_path / "e.sqlite")]) == 0
    assert capsys.readouterr().out == EMPTY


def test_a_normal_end_shows_as_ok():
    assert status_of("stop") == "ok" and status_of("length") == "length"


def test_an_empty_answer_stored_by_an_earlier_version_is_not_ok_and_is_asked_again(tmp_path):
    request = make_request(1)
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        cache.put(request, make_completion(text=" \n"), 1.0)  # as versions before empty answers were failures
        cache.put(make_request(2), make_completion(), 1.0)
        assert [(r["status"], r["responses"]) for r in cache.stats().rows] == [("empty", 1), ("ok", 1)]
        assert not cache.get(request.key).ok
        assert cache.answered([request.key, make_request(2).key]) == {make_request(2).key}  # a rerun asks again
        stored = cache.put(request, make_completion(text="Question:\nQ?\n===\nAnswer:\nA real one."), 1.0)
        assert stored.text.endswith("A real one.") and cache.get(request.key).ok  # the new answer replaces it
        kept = cache.put(request, make_completion(text="Question:\nQ?\n===\nAnswer:\nAnother."), 1.0)
        assert kept.text.endswith("A real one.")  # a real answer still wins over a later one


def test_paid_empty_answers_recorded_as_failures_count_in_the_money_spent(tmp_path, capsys):
    from keypoint_instruct.llm.store.stats import empty_answer_reason

    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        cache.put(make_request(1), make_completion(), 1.0)
        cache.record_failure(make_request(2), "attempt 1: " + empty_answer_reason("stop", 1000, 0, 0.0025))
        cache.record_failure(make_request(2), "attempt 2: HTTP 500 server_error")
        stats = cache.stats()
    assert (stats.empty_answers, stats.empty_usd) == (1, 0.0025)
    assert stats.cost_usd == pytest.approx(0.0045 + 0.0025) and stats.rows[0]["status"] == "ok"
    assert main(["cache", "stats", "--cache", str(tmp_path / "c.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "failed attempts: 2; keys failed and never answered: 1; empty answers paid for: 1 ($0.0025)" in out
    assert "money spent: $0.0070 (empty answers included)" in out
