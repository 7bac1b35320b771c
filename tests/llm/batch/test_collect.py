"""`collect` against the fake OpenAI server: batches that end early, refusals and answers without usage."""

from __future__ import annotations

import logging

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.llm.batch.collect import collect
from keypoint_instruct.llm.batch.submit import submit
from keypoint_instruct.llm.pricing import completion_cost, count_message_tokens, token_counter
from keypoint_instruct.llm.request import request_key
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.llm.batch.test_submit import SPLIT, client_for, make_requests


@pytest.fixture(scope="module")
def scenes(coco_root):
    return select_scenes(load_scenes(coco_root, SPLIT).values(), limit=4)


@pytest.mark.parametrize("ending", ["expired", "cancelled", "failed"])
def test_a_batch_that_ends_early_keeps_its_answers_and_frees_only_the_rest(
    fake_openai, scenes, coco_root, tmp_path, capsys, ending
):
    requests = make_requests(scenes)
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        submit(client, requests, cache, tmp_path / "files")
        fake_openai.end_batches(ending, answered=0.5)
        result = collect(client, cache)
        answered = 0 if ending == "failed" else 4
        assert (result.added, result.failures) == (answered, 8 - answered)
        assert f"{ending}" in str(result) and "free to send again" in str(result)
        assert cache.stats().responses == answered and BatchJobs(cache).pending_keys() == set()
        unanswered = {r.key for r in requests} - cache.answered(r.key for r in requests)
        reasons = {cache.failures(key)[0]["reason"] for key in unanswered}
        assert all(ending in reason for reason in reasons), reasons
        if ending == "failed":
            assert any("injected validation failure" in reason for reason in reasons)
        assert collect(client, cache).failures == 0  # collected once

    # generate now sends exactly the unanswered requests, never one that the batch answered
    fake_openai.clear_log()
    argv = ["generate", "--task", "all", "--coco-root", str(coco_root), "--split", SPLIT, "--limit", "4"]
    argv += ["--cache", str(tmp_path / "c.db"), "--base-url", fake_openai.base_url, "--no-progress"]
    assert main(argv) == 0
    sent = {request_key(e.body) for e in fake_openai.chat_log(ok_only=True)}
    assert sent.isdisjoint({r.key for r in requests} - unanswered)
    assert unanswered <= sent


def test_a_refusal_and_answers_without_usage_in_a_batch_are_kept_like_online_ones(
    fake_openai, scenes, tmp_path, caplog, monkeypatch
):
    """Output lines as the teacher reads online answers: a refusal (content null, the refusal field set) is stored as
    its text with finish_reason refusal, not as an empty complete answer; an answer without usage is counted here
    (o200k) and priced at the Batch rate, not stored at $0, with one warning for the model."""
    monkeypatch.setattr("keypoint_instruct.llm.providers.openai._warned_no_usage", set())
    requests = make_requests(scenes)
    refused, uncounted = requests[0], requests[1:3]
    faults = {refused.key: "refusal", **{r.key: "no_usage" for r in uncounted}}
    fake_openai.set_batch(line_faults=faults)
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        submit(client, requests, cache, tmp_path / "files")
        fake_openai.complete_batches()
        with caplog.at_level(logging.WARNING, logger="keypoint_instruct.llm.providers.openai"):
            assert collect(client, cache).added == len(requests)
        stored = cache.get(refused.key)
        assert (stored.finish_reason, stored.text) == ("refusal", "I'm sorry, but I can't help with that request.")
        for request in uncounted:
            stored = cache.get(request.key)
            prompt = count_message_tokens(request.body["messages"])
            assert (stored.prompt_tokens, stored.completion_tokens) == (prompt, token_counter().count(stored.text))
            model = request.body["model"]
            expected = completion_cost(
                model, prompt_tokens=prompt, completion_tokens=stored.completion_tokens, batch=True
            )
            assert stored.cost_usd == pytest.approx(expected) and stored.cost_usd > 0
    warnings = [r.getMessage() for r in caplog.records if "no token usage" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_an_empty_answer_in_a_batch_is_a_paid_failure_and_generate_asks_again(
    fake_openai, scenes, coco_root, tmp_path, capsys
):
    requests = make_requests(scenes)
    empty = requests[0]
    fake_openai.set_batch(line_faults={empty.key: "empty"})
    client = client_for(fake_openai)
    cache_path = tmp_path / "c.db"
    with ResponseCache(cache_path, create=True) as cache:
        submit(client, requests, cache, tmp_path / "files")
        fake_openai.complete_batches()
        result = collect(client, cache)
        assert (result.added, result.failures) == (len(requests) - 1, 1)
        assert cache.get(empty.key) is None  # not stored: it is no answer
        [failure] = cache.failures(empty.key)
        assert "empty answer (finish_reason stop;" in failure["reason"] and " paid)" in failure["reason"]
        stats = cache.stats()
        assert stats.empty_answers == 1 and stats.cost_usd == pytest.approx(
            sum(r.cost_usd for r in cache.iter_responses()) + stats.empty_usd
        )
        assert collect(client, cache).failures == 0  # collected once: nothing counted twice

    fake_openai.clear_log()
    argv = ["generate", "--task", "all", "--coco-root", str(coco_root), "--split", SPLIT, "--limit", "4"]
    assert main([*argv, "--cache", str(cache_path), "--base-url", fake_openai.base_url, "--no-progress"]) == 0
    sent = {request_key(e.body) for e in fake_openai.chat_log()}
    assert empty.key in sent and sent.isdisjoint(r.key for r in requests[1:])  # asked again; the answered ones not
