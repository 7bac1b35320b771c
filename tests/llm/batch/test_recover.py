"""A `batch submit` killed while creating a batch: its requests stay pending until the provider says what it made.

The submit runs as a real process that the test kills (``kill -9``) while the fake server holds its batch creation.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.errors import CacheError, TeacherError
from keypoint_instruct.llm.batch.api import ENDPOINT
from keypoint_instruct.llm.batch.collect import collect
from keypoint_instruct.llm.batch.submit import _create_provisional, request_line, submit
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.fake_openai import FakeOpenAI
from tests.llm.batch.test_submit import SPLIT, client_for, make_requests
from tests.paths import REPO


@pytest.fixture(scope="module")
def scenes(coco_root):
    return select_scenes(load_scenes(coco_root, SPLIT).values(), limit=4)


def start_submit(server, coco_root, cache_path) -> subprocess.Popen:
    """A real `batch submit` process: all tasks of 2 images (6 requests) in one batch."""
    argv = [sys.executable, "-m", "keypoint_instruct", "batch", "submit", "--task", "all", "--coco-root"]
    argv += [str(coco_root), "--split", SPLIT, "--limit", "2", "--cache", str(cache_path)]
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    argv += ["--base-url", server.base_url, "--out-dir", str(cache_path.parent / "files")]
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(predicate, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert proc.poll() is None, f"batch submit ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def submitting_rows(cache_path) -> int:
    try:
        with sqlite3.connect(cache_path) as db:
            return db.execute("SELECT COUNT(*) FROM batches WHERE status = 'submitting'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL  # reaped: its claims die with it


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_submit_killed_after_the_provider_made_its_batch_never_pays_twice(fake_openai, coco_root, tmp_path, capsys):
    cache_path = tmp_path / "c.db"
    client = client_for(fake_openai)
    url = ["--base-url", fake_openai.base_url]
    selection = ["--task", "all", "--coco-root", str(coco_root), "--split", SPLIT, "--limit", "2"]
    fake_openai.set_batch(hold_creates_s=60)  # the batch is made, its id never reaches the client
    proc = start_submit(fake_openai, coco_root, cache_path)
    try:
        wait_for(lambda: client.batches.list().data, "the provider made the batch", proc)
        # while the submit lives, `batch status` leaves its record alone and shows it
        code, out, err = cli(capsys, "batch", "status", "--cache", str(cache_path), *url)
        assert code == 0 and "6 requests pending: a `batch submit` is creating this batch" in out, out + err
        provisional = out.split()[0]
        code, _, err = cli(capsys, "batch", "cancel", provisional, "--cache", str(cache_path), *url)
        assert code == 2 and "is the record of a batch that a `batch submit` is creating" in err, err
    finally:
        kill(proc)
    [remote] = client.batches.list().data
    keys = {json.loads(x)["custom_id"] for x in client.files.content(remote.input_file_id).text.splitlines()}
    assert len(keys) == 6

    # a generate started now sends none of the batch's requests
    code, out, err = cli(capsys, "generate", *selection, "--cache", str(cache_path), *url, "--no-progress")
    assert code == 0 and "6 requests: 0 already cached, 6 waiting in a batch, 0 answered" in out, out + err
    assert fake_openai.chat_log() == []

    # the next `batch status` finds the batch by its input file and records it
    code, out, err = cli(capsys, "batch", "status", "--cache", str(cache_path), *url)
    assert code == 0 and f"{remote.id}  in_progress" in out and "submitting" not in out, out
    notes = [line for line in err.splitlines() if line.startswith("keypoint-instruct:")]
    assert len(notes) == 1 and f"found batch {remote.id}" in notes[0] and remote.input_file_id in notes[0], err
    fake_openai.complete_batches()
    code, out, err = cli(capsys, "batch", "collect", "--cache", str(cache_path), *url)
    assert code == 0 and "collected 1 batch: 6 answers added" in out, out + err
    code, out, err = cli(capsys, "generate", *selection, "--cache", str(cache_path), *url, "--no-progress")
    assert code == 0 and "6 requests: 6 already cached" in out
    assert fake_openai.chat_log() == [] and len(client.batches.list().data) == 1  # each request paid once


def test_a_submit_killed_before_the_provider_made_a_batch_frees_its_requests(fake_openai, coco_root, tmp_path, capsys):
    cache_path = tmp_path / "c.db"
    client = client_for(fake_openai)
    url = ["--base-url", fake_openai.base_url]
    selection = ["--task", "all", "--coco-root", str(coco_root), "--split", SPLIT, "--limit", "2"]
    fake_openai.set_batch(hold_creates_s=60, make_held=False)  # killed before any batch is made
    proc = start_submit(fake_openai, coco_root, cache_path)
    try:
        wait_for(lambda: submitting_rows(cache_path), "the submit recorded its requests", proc)
    finally:
        kill(proc)
    assert client.batches.list().data == []
    # another endpoint than the submit's does not know its input file: the requests stay pending
    with FakeOpenAI() as elsewhere:
        code, out, err = cli(capsys, "batch", "status", "--cache", str(cache_path), "--base-url", elsewhere.base_url)
    assert code == 0 and f"the provider at {elsewhere.base_url} does not know input file" in err, err
    assert "stay pending; pass the --base-url it was submitted to" in err
    # until the provider the submit used is asked, the requests count as waiting in a batch
    code, out, _ = cli(capsys, "generate", *selection, "--cache", str(cache_path), "--dry-run")
    assert "waiting in a batch: 6; to send: 0" in out

    # the next `batch submit` finds no batch for the input file: it says so in one line and submits them afresh
    fake_openai.set_batch()
    code, out, err = cli(capsys, "batch", "submit", *selection, "--cache", str(cache_path), *url)
    notes = [line for line in err.splitlines() if line.startswith("keypoint-instruct:")]
    assert len(notes) == 1 and "made no batch" in notes[0] and "6 requests" in notes[0], err
    assert code == 0 and "submitted 6 requests in 1 batch" in out, out + err
    assert submitting_rows(cache_path) == 0 and len(client.batches.list().data) == 1
    fake_openai.complete_batches()
    code, out, _ = cli(capsys, "batch", "collect", "--cache", str(cache_path), *url)
    assert code == 0 and "6 answers added" in out and fake_openai.chat_log() == []


def test_collect_records_a_batch_an_interrupted_submit_left_unrecorded(fake_openai, scenes, tmp_path):
    """A cache left with a provisional record (the submitter died with no claim left): `collect` resolves it."""
    requests = make_requests(scenes, tasks=("conversation",))
    client = client_for(fake_openai)
    data = b"".join(request_line(r) for r in requests)
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        jobs = BatchJobs(cache)
        jobs.record_submitting(uploaded.id, requests)
        assert jobs.pending_keys() == {r.key for r in requests}
        made = client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h")
        fake_openai.complete_batches()
        result = collect(client, cache)
        assert result.collected_batches == [made.id] and result.added == 4
        assert any(f"found batch {made.id}" in note for note in result.notes)
        assert [row["batch_id"] for row in jobs.rows()] == [made.id] and jobs.pending_keys() == set()


def test_a_refused_batch_creation_leaves_no_provisional_record(fake_openai, scenes, tmp_path):
    requests = make_requests(scenes, tasks=("conversation",))
    fake_openai.set_batch(hold_creates_s=0.01, make_held=False)  # a 500, and no batch was made
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        with pytest.raises(TeacherError, match="no such batch exists"):
            submit(client_for(fake_openai), requests, cache, tmp_path)
        assert BatchJobs(cache).rows() == [] and BatchJobs(cache).pending_keys() == set()
        assert cache.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_a_submit_whose_record_was_settled_meanwhile_creates_nothing(fake_openai, scenes, tmp_path):
    """A submit paused past its claim lease may find its provisional record settled by another run: it stops."""
    requests = make_requests(scenes[:1], tasks=("conversation",))
    client = client_for(fake_openai)
    uploaded = client.files.create(file=("in.jsonl", request_line(requests[0])), purpose="batch")
    with ResponseCache(tmp_path / "c.db", create=True) as cache:
        provisional = BatchJobs(cache).record_submitting(uploaded.id, requests)
        assert BatchJobs(cache).drop_submitting(provisional) == 1  # what another run's `batch status` did
        with pytest.raises(CacheError, match="settled by another run"):
            _create_provisional(client, cache, provisional, uploaded.id, "digest", "in.jsonl")
    assert [e.path for e in fake_openai.log() if e.method == "POST"] == ["/v1/files"]
