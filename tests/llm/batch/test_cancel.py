"""`batch cancel` and `batch forget` through the real CLI against the fake OpenAI server."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.llm.request import request_key
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache

SPLIT = "val2014"


@pytest.fixture
def submitted(fake_openai, coco_root, tmp_path, capsys):
    """A cache with one uncollected batch of 12 requests (the three tasks of 4 images)."""
    cache = tmp_path / "c.db"
    selection = ["--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--limit", "4"]
    endpoint = ["--base-url", fake_openai.base_url]
    assert main(["batch", "submit", "--task", "all", *selection, *endpoint]) == 0
    capsys.readouterr()
    with ResponseCache(cache) as opened:
        [row] = BatchJobs(opened).rows()
    return cache, row["batch_id"], selection, endpoint


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv) -> str:
    """The one error line of a command that must exit 2."""
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "DEBUG "))]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cancel_then_collect_keeps_what_finished_and_generate_sends_only_the_rest(fake_openai, submitted, capsys):
    cache, batch_id, selection, endpoint = submitted
    code, out, _ = run(capsys, "batch", "cancel", batch_id, "--cache", str(cache), *endpoint)
    assert code == 0 and f"batch {batch_id} is cancelling; run `batch collect`" in out
    # until it is collected its requests still wait in it: nothing is sent twice
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, "--dry-run")
    assert "waiting in a batch: 12; to send: 0" in out
    code, out, _ = run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)
    assert code == 0 and "6 answers added" in out and f"{batch_id} cancelled" in out
    with ResponseCache(cache) as opened:
        answered = {r.key for r in opened.iter_responses()}
    assert len(answered) == 6
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, *endpoint, "--no-progress")
    assert code == 0 and "12 requests: 6 already cached, 0 waiting in a batch, 6 answered" in out
    sent = [request_key(e.body) for e in fake_openai.chat_log()]
    assert len(sent) == 6 and not set(sent) & answered  # exactly the unanswered ones, each once


def test_forget_a_batch_the_provider_lost(fake_openai, submitted, capsys):
    cache, batch_id, selection, endpoint = submitted
    with ResponseCache(cache) as opened:  # one of its keys got an answer in the meantime (e.g. a merged shard)
        key = next(iter(BatchJobs(opened).pending_keys()))
        meta = BatchJobs(opened).request(key)
        opened.db.execute(
            "INSERT INTO responses VALUES (?, ?, ?, ?, 'gpt-4o-2024-08-06', ?, 'kept', 'stop', 1, 1, 0, 0, 0, 'x')",
            (key, meta["task"], meta["image_id"], meta["coco_split"], meta["prompt_version"]),
        )
    fake_openai.forget_batch(batch_id)
    code, out, _ = run(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint)
    assert f"forgot batch {batch_id} (the provider at {fake_openai.base_url} no longer knows it): 11 requests" in out
    code, out, _ = run(capsys, "batch", "status", "--cache", str(cache), *endpoint)
    assert code == 0 and f"{batch_id}  forgotten" in out and "12 requests, none pending" in out
    code, out, _ = run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)
    assert code == 0 and "collected 0 batches" in out  # a forgotten batch is not asked for again
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, *endpoint, "--no-progress")
    assert code == 0 and "12 requests: 1 already cached, 0 waiting in a batch, 11 answered" in out
    with ResponseCache(cache) as opened:
        assert opened.get(key).text == "kept"
    assert key not in {request_key(e.body) for e in fake_openai.chat_log()}
    code, out, _ = run(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint)
    assert code == 0 and "forgotten already" in out


def test_forget_refuses_a_batch_the_provider_still_runs_unless_forced(fake_openai, submitted, capsys):
    cache, batch_id, selection, endpoint = submitted
    line = refused(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint)
    assert f"batch {batch_id} is still in_progress at the provider" in line and "--force" in line
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, "--dry-run")
    assert "waiting in a batch: 12; to send: 0" in out  # nothing was freed
    fake_openai.complete_batches()
    line = refused(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint)
    assert "has ended at the provider (completed): `batch collect` it" in line
    code, out, _ = run(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint, "--force")
    assert code == 0 and "forced; the provider reports it completed" in out and "12 requests" in out
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, "--dry-run")
    assert "waiting in a batch: 0; to send: 12" in out


@pytest.mark.parametrize("action", ["cancel", "forget"])
def test_unknown_or_collected_batch_is_one_line(fake_openai, submitted, capsys, action):
    cache, batch_id, _, endpoint = submitted
    line = refused(capsys, "batch", action, "batch-nope", "--cache", str(cache), *endpoint)
    assert "batch batch-nope is not recorded in" in line and "batch status" in line
    fake_openai.complete_batches()
    assert main(["batch", "collect", "--cache", str(cache), *endpoint]) == 0
    capsys.readouterr()
    line = refused(capsys, "batch", action, batch_id, "--cache", str(cache), *endpoint)
    assert f"batch {batch_id} was collected on" in line and f"nothing to {action}" in line


@pytest.mark.parametrize("action", ["cancel", "forget"])
def test_an_unknown_batch_is_named_before_any_endpoint_or_key_is_needed(submitted, capsys, monkeypatch, action):
    cache, _, _, _ = submitted
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    line = refused(capsys, "batch", action, "batch-nope", "--cache", str(cache))
    assert "batch batch-nope is not recorded in" in line, line


def test_cancel_of_a_batch_that_ended_or_was_lost_is_one_line(fake_openai, submitted, capsys):
    cache, batch_id, _, endpoint = submitted
    fake_openai.complete_batches()
    line = refused(capsys, "batch", "cancel", batch_id, "--cache", str(cache), *endpoint)
    assert "has ended already (completed); `batch collect` it" in line
    fake_openai.forget_batch(batch_id)
    line = refused(capsys, "batch", "cancel", batch_id, "--cache", str(cache), *endpoint)
    assert f"the provider at {fake_openai.base_url} does not know batch" in line
    assert f"`batch forget {batch_id}`" in line
    assert "if not, pass the --base-url it was submitted to" in line  # a wrong endpoint must not lead to a forget


def test_a_forced_forget_still_collects_the_answers_the_batch_delivers_later(fake_openai, submitted, capsys):
    cache, batch_id, selection, endpoint = submitted
    code, out, _ = run(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint, "--force")
    assert code == 0 and "forced; the provider reports it in_progress" in out
    first_two = [*selection[:-1], "2"]  # meanwhile generate sends the requests of the first two images
    code, out, _ = run(capsys, "generate", "--task", "all", *first_two, *endpoint, "--no-progress")
    assert code == 0 and "6 requests: 0 already cached, 0 waiting in a batch, 6 answered" in out
    fake_openai.complete_batches()  # the batch was not lost after all: its 12 answers are paid for
    code, out, _ = run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)
    assert code == 0 and "collected 1 batch: 6 answers added" in out and "6 already in the cache" in out
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, "--dry-run")
    assert "already cached: 12; waiting in a batch: 0; to send: 0" in out  # nothing is paid a third time
    code, out, _ = run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)
    assert code == 0 and "collected 0 batches" in out  # once only
    code, out, _ = run(capsys, "batch", "status", "--cache", str(cache), *endpoint)
    assert f"{batch_id}  forgotten" in out and "collected" in out


def test_a_batch_forgotten_while_it_runs_can_still_be_cancelled(fake_openai, submitted, capsys):
    cache, batch_id, selection, endpoint = submitted
    assert run(capsys, "batch", "forget", batch_id, "--cache", str(cache), *endpoint, "--force")[0] == 0
    code, out, err = run(capsys, "batch", "cancel", batch_id, "--cache", str(cache), *endpoint)  # stop paying for it
    assert code == 0 and f"batch {batch_id} is cancelling at the provider" in out, err
    assert "it stays forgotten here" in out
    code, out, _ = run(capsys, "generate", "--task", "all", *selection, "--dry-run")
    assert "waiting in a batch: 0; to send: 12" in out  # its requests stay free to send
    code, out, _ = run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)
    assert code == 0 and "6 answers added" in out and f"{batch_id} cancelled" in out
    code, out, _ = run(capsys, "batch", "status", "--cache", str(cache), *endpoint)
    assert f"{batch_id}  forgotten" in out


def test_status_after_collect_shows_the_counts_the_batch_ended_with(fake_openai, submitted, capsys):
    cache, batch_id, _, endpoint = submitted
    assert run(capsys, "batch", "cancel", batch_id, "--cache", str(cache), *endpoint)[0] == 0
    code, before, _ = run(capsys, "batch", "status", "--cache", str(cache), *endpoint)
    counts = before.split("cancelled")[1].strip()
    assert code == 0 and "/12 done, " in counts and not counts.startswith("12/12"), before
    assert run(capsys, "batch", "collect", "--cache", str(cache), *endpoint)[0] == 0
    code, after, _ = run(capsys, "batch", "status", "--cache", str(cache), *endpoint)
    assert code == 0 and after.split("cancelled")[1].strip() == f"{counts}  collected", after


def test_batch_commands_use_the_endpoint_the_batch_was_submitted_to(fake_openai, submitted, capsys, monkeypatch):
    cache, batch_id, _, endpoint = submitted
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code, out, err = run(capsys, "batch", "status", "--cache", str(cache))
    assert code == 0 and batch_id in out and "Traceback" not in err, err
    code, out, err = run(capsys, "batch", "cancel", batch_id, "--cache", str(cache))
    assert code == 0 and "cancelling" in out, err
    # an explicit --base-url wins; its connection error names the URL it tried
    line = refused(capsys, "batch", "status", "--cache", str(cache), "--base-url", "http://127.0.0.1:9/v1")
    assert "http://127.0.0.1:9/v1/batches/" in line and "Connection error" in line, line
    code, out, err = run(capsys, "batch", "collect", "--cache", str(cache))
    assert code == 0 and "collected 1 batch" in out, err


def test_forget_uses_the_recorded_endpoint(fake_openai, submitted, capsys, monkeypatch):
    cache, batch_id, _, _ = submitted
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake_openai.forget_batch(batch_id)
    code, out, err = run(capsys, "batch", "forget", batch_id, "--cache", str(cache))
    assert code == 0 and f"the provider at {fake_openai.base_url} no longer knows it" in out, err


def test_a_base_url_query_is_sent_as_a_query_and_recorded_with_the_batch(fake_openai, coco_root, tmp_path, capsys):
    cache = tmp_path / "q.db"
    url = fake_openai.base_url + "?api-version=2024-10-21"
    selection = ["--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--limit", "1"]
    assert run(capsys, "batch", "submit", "--task", "conversation", *selection, "--base-url", url)[0] == 0
    code, out, err = run(capsys, "batch", "status", "--cache", str(cache))  # the recorded URL, query included
    assert code == 0 and "in_progress" in out, err
    entries = fake_openai.log()
    assert entries and all("api-version=2024-10-21" in e.query.split("&") and "?" not in e.path for e in entries), [
        (e.method, e.path, e.query) for e in entries
    ]
