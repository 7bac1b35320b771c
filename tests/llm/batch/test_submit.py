"""Batch API submits against the fake OpenAI server, and round trips through collect, exactly once."""

from __future__ import annotations

import json

import pytest
from openai import OpenAI

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.errors import TeacherError
from keypoint_instruct.llm.batch.collect import CollectResult, collect, status
from keypoint_instruct.llm.batch.submit import SubmitResult, request_line, split_lines, submit
from keypoint_instruct.llm.pricing import completion_cost
from keypoint_instruct.llm.request import GenerationSettings, request_key
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import Claims
from keypoint_instruct.teacher.requests import build_requests

SPLIT = "val2014"


@pytest.fixture(scope="module")
def scenes(coco_root):
    return select_scenes(load_scenes(coco_root, SPLIT).values(), limit=4)


def make_requests(scenes, tasks=("conversation", "complex_reasoning")):
    settings = GenerationSettings()
    return [r for task in tasks for r in build_requests(scenes, task, settings, "paper", SPLIT)]


def client_for(server) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)


def paths(server) -> list[str]:
    return [f"{e.method} {e.path}" for e in server.log()]


def test_submit_collect_round_trip_exactly_once(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes)
    client = client_for(fake_openai)
    failing = requests[3].key
    fake_openai.set_batch(error_ids={failing})
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        submitted = submit(client, requests, cache, tmp_path / "files")
        assert submitted.submitted == len(requests) == 8 and len(submitted.batch_ids) == 1
        assert paths(fake_openai).count("POST /v1/files") == 1 and paths(fake_openai).count("POST /v1/batches") == 1
        lines = [json.loads(x) for x in submitted.files[0].read_text().splitlines()]
        assert [x["custom_id"] for x in lines] == [r.key for r in requests]
        assert all(request_key(x["body"]) == x["custom_id"] and x["url"] == "/v1/chat/completions" for x in lines)
        assert BatchJobs(cache).pending_keys() == {r.key for r in requests}

        # not finished yet: nothing is ingested, the batch stays uncollected
        early = collect(client, cache)
        assert early.waiting_batches == submitted.batch_ids and early.added == 0
        assert "in_progress" in str(status(client, cache))

        fake_openai.complete_batches()
        done = collect(client, cache)
        assert (done.added, done.failures, done.already_present, done.unmatched) == (7, 1, 0, 0)
        assert cache.answered(r.key for r in requests) == {r.key for r in requests} - {failing}
        assert "HTTP 500" in cache.failures(failing)[0]["reason"]

        # answers are matched by custom_id although the output file is shuffled
        remote = client.batches.retrieve(submitted.batch_ids[0])
        output = {
            x["custom_id"]: x for x in map(json.loads, client.files.content(remote.output_file_id).text.splitlines())
        }
        for request in requests:
            if request.key == failing:
                continue
            stored, body = cache.get(request.key), output[request.key]["response"]["body"]
            assert stored.text == body["choices"][0]["message"]["content"]
            assert (stored.task, stored.image_id, stored.prompt_version) == (
                request.task,
                request.item_id,
                request.prompt_version,
            )
            usage = body["usage"]
            sync = completion_cost(
                "gpt-4o-2024-08-06",
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                cached_tokens=usage["prompt_tokens_details"]["cached_tokens"],
            )
            assert stored.cost_usd == pytest.approx(sync / 2) and stored.cost_usd > 0

        # a second collect adds nothing and asks for no file
        before = len(fake_openai.log())
        again = collect(client, cache)
        assert (again.added, again.failures, again.collected_batches) == (0, 0, [])
        assert len(fake_openai.log()) == before and cache.stats().responses == 7
        assert "collected" in str(status(client, cache))

        # submitting the same selection again sends only the failed request
        fake_openai.set_batch()
        resubmitted = submit(client, requests, cache, tmp_path / "files")
        assert (resubmitted.submitted, resubmitted.already_answered) == (1, 7)
        assert BatchJobs(cache).pending_keys() == {failing}


def test_pending_requests_are_not_submitted_twice(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes, tasks=("conversation",))
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        submit(client, requests[:2], cache, tmp_path)
        second = submit(client, requests, cache, tmp_path)
    assert (second.submitted, second.already_pending) == (2, 2)
    assert paths(fake_openai).count("POST /v1/batches") == 2


def test_files_split_by_count_and_bytes(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes)
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "a.db", create=True) as cache:
        by_count = submit(client, requests, cache, tmp_path / "a", max_requests=3)
    assert [len(p.read_text().splitlines()) for p in by_count.files] == [3, 3, 2]
    assert len(by_count.batch_ids) == 3 and paths(fake_openai).count("POST /v1/files") == 3

    size = len(request_line(requests[0]))
    chunks = split_lines(requests, max_requests=50_000, max_bytes=int(size * 2.5))
    assert all(len(data) <= size * 2.5 for _, data in chunks) and sum(len(c) for c, _ in chunks) == len(requests)
    assert len(chunks) >= 4


def test_interrupted_submit_finds_its_batch_again(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes, tasks=("complex_reasoning",))
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "first.db", create=True) as cache:
        first = submit(client, requests, cache, tmp_path / "f")
    # the batch was created but (as after a crash) never recorded in this cache
    with ResponseCache(tmp_path / "second.db", create=True) as cache:
        second = submit(client, requests, cache, tmp_path / "g")
        assert second.adopted == 1 and second.batch_ids == first.batch_ids
        assert paths(fake_openai).count("POST /v1/batches") == 1
        fake_openai.complete_batches()
        assert collect(client, cache).added == len(requests)


def test_lost_answer_to_a_batch_creation_is_found_not_repeated(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes, tasks=("conversation",))
    client = OpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=2, timeout=10)
    fake_openai.set_batch(drop_creates=1)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        result = submit(client, requests, cache, tmp_path)
        creations = [e for e in fake_openai.log() if e.method == "POST" and e.path == "/v1/batches"]
        assert [e.status for e in creations] == [0]  # sent once although the SDK would retry, answer lost
        assert result.batch_ids == [row["batch_id"] for row in BatchJobs(cache).rows()] and result.submitted == 4
        fake_openai.complete_batches()
        assert collect(client, cache).added == 4


def test_a_failed_request_resubmitted_alone_gets_a_new_batch(fake_openai, scenes, tmp_path):
    """The same input bytes as a batch this cache already collected must not be mistaken for an interrupted submit."""
    [request] = make_requests(scenes[:1], tasks=("conversation",))
    client = client_for(fake_openai)
    fake_openai.set_batch(error_ids={request.key})
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        submit(client, [request], cache, tmp_path)
        fake_openai.complete_batches()
        assert collect(client, cache).failures == 1
        fake_openai.set_batch()
        again = submit(client, [request], cache, tmp_path)
        assert again.adopted == 0 and paths(fake_openai).count("POST /v1/batches") == 2
        fake_openai.complete_batches()
        assert collect(client, cache).added == 1 and cache.get(request.key) is not None


def test_unreachable_endpoint_is_one_teacher_error(scenes, tmp_path):
    client = OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0, timeout=2)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        with pytest.raises(TeacherError, match="Batch API: uploading .* failed"):
            submit(client, make_requests(scenes, tasks=("conversation",)), cache, tmp_path)


def test_counts_in_the_summaries_agree_in_number(tmp_path):
    one = SubmitResult(batch_ids=["batch_1"], files=[tmp_path / "b.jsonl"], submitted=1, already_answered=1)
    assert str(one).startswith("submitted 1 request in 1 batch: batch_1; skipped 1 already answered")
    two = SubmitResult(batch_ids=["b1", "b2"], files=[tmp_path / "b.jsonl"], submitted=9, adopted=1)
    assert str(two).startswith("submitted 9 requests in 2 batches (1 found again after an interrupted submit)")
    assert str(SubmitResult(already_answered=1)) == (
        "nothing to submit: 1 request already answered, 0 waiting in earlier batches"
    )
    got = CollectResult(collected_batches=["b1"], added=1, already_present=2, failures=1, unmatched=1)
    assert str(got).startswith("collected 1 batch: 1 answer added (")
    assert "1 failed request recorded, 1 line matching no submitted request ignored" in str(got)
    assert str(CollectResult()).startswith("collected 0 batches: 0 answers added")


def test_submit_skips_what_another_run_is_sending_and_releases_what_it_recorded(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes, tasks=("conversation",))
    client = client_for(fake_openai)
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        sending = Claims(cache)  # a live run is sending the first request
        sending.claim([requests[0].key])
        result = submit(client, requests, cache, tmp_path)
        assert (result.submitted, result.claimed_elsewhere) == (3, 1)
        assert str(result).endswith(
            f"0 waiting in earlier batches, 1 being sent by another run; request files in {tmp_path}"
        )
        lines = [json.loads(x)["custom_id"] for x in result.files[0].read_text().splitlines()]
        assert lines == [r.key for r in requests[1:]]
        owners = [row[0] for row in cache.db.execute("SELECT owner FROM claims")]
        assert owners == [sending.owner]  # the submit's own claims went with the batch record
