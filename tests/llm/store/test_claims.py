"""In-flight claims in the cache file: atomic claims, live owners, takeover of dead ones, the schema migration."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.errors import CacheError, TeacherError
from keypoint_instruct.llm.online.engine import EngineSettings, run
from keypoint_instruct.llm.providers.openai import OpenAIChat
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import _APPLICATION_ID, SCHEMA_VERSION, ResponseCache, _schema
from keypoint_instruct.llm.store.claims import Claims, is_live, this_machine
from tests.llm.store.test_cache import make_completion, make_request


def claim_rows(path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, owner FROM claims ORDER BY key").fetchall()


def test_a_live_claim_is_skipped_and_an_expired_one_taken_over(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    keys = [make_request(i).key for i in range(5)]
    first = Claims(cache, lease_s=0.4)
    second = Claims(cache, lease_s=60)
    assert first.claim(keys[:3]).claimed == set(keys[:3])
    got = second.claim(keys)
    assert (got.claimed, got.held) == (set(keys[3:]), set(keys[:3]))
    assert first.claim(keys[:3]).claimed == set(keys[:3])  # claiming again what it holds is fine
    assert second.held_elsewhere(keys) == set(keys[:3])
    time.sleep(0.5)  # the first run stopped renewing: its lease runs out
    assert second.held_elsewhere(keys) == set()
    assert second.claim(keys[:3]).claimed == set(keys[:3])
    assert {owner for _, owner in claim_rows(cache.path)} == {second.owner}
    assert first.claim(keys[:1]).held == {keys[0]}  # now the first run is the one that must wait


def test_renewed_claims_outlive_their_lease_and_go_when_the_run_ends(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    keys = [make_request(i).key for i in range(3)]
    owner = Claims(cache, lease_s=0.4)
    other = Claims(cache)
    with owner.renewing():
        owner.claim(keys)
        time.sleep(0.9)  # more than two leases: only the renewals keep them
        assert other.claim(keys).held == set(keys)
    assert claim_rows(cache.path) == []  # released at the end
    assert other.claim(keys).claimed == set(keys)


def test_answered_and_batched_keys_are_not_claimed(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    answered, batched, free = make_request(1), make_request(2), make_request(3)
    cache.put(answered, make_completion(), 0.1)
    BatchJobs(cache).record("batch-1", [batched], input_file_id="file-1", status="in_progress")
    got = Claims(cache).claim([answered.key, batched.key, free.key])
    assert (got.answered, got.in_batch, got.claimed, got.held) == ({answered.key}, {batched.key}, {free.key}, set())


def test_storing_an_answer_or_recording_a_batch_releases_the_claim(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    a, b, c = make_request(1), make_request(2), make_request(3)
    claims = Claims(cache)
    claims.claim([a.key, b.key, c.key])
    cache.put(a, make_completion(), 0.1, claim_owner=claims.owner)
    BatchJobs(cache).record("batch-1", [b], input_file_id="file-1", status="in_progress", claim_owner=claims.owner)
    assert claim_rows(cache.path) == [(c.key, claims.owner)]


def test_a_dead_process_on_this_host_holds_nothing_and_another_host_holds_until_the_lease(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    now = time.time()
    host = this_machine()
    assert not is_live(f"{host}:{dead_pid}:abcd", now + 600, now)  # killed outright: taken over at once
    assert is_live(f"{host}:{os.getpid()}:abcd", now + 600, now)
    assert is_live(f"other-{host}:{dead_pid}:abcd", now + 600, now)  # cannot see its processes: the lease rules
    assert not is_live(f"other-{host}:{dead_pid}:abcd", now - 1, now)

    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    key = make_request(1).key
    cache.db.execute("INSERT INTO claims VALUES (?, ?, ?)", (key, f"{host}:{dead_pid}:abcd", now + 600))
    assert Claims(cache).claim([key]).claimed == {key}


def test_generate_skips_what_another_run_is_sending_and_says_so(fake_openai, coco_root, tmp_path, capsys):
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.context import select_scenes
    from keypoint_instruct.llm.request import GenerationSettings
    from keypoint_instruct.teacher.requests import build_requests

    scenes = select_scenes(load_scenes(coco_root, "val2014").values(), limit=5)
    requests = build_requests(scenes, "conversation", GenerationSettings(), "paper", "val2014")
    cache_path = tmp_path / "c.sqlite"
    with ResponseCache(cache_path, create=True) as cache:
        busy = Claims(cache)  # a live run (this very process) is sending the first two
        busy.claim(r.key for r in requests[:2])
        argv = ["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014"]
        argv += ["--cache", str(cache_path), "--limit", "5", "--base-url", fake_openai.base_url]
        assert main([*argv, "--dry-run"]) == 0
        assert "waiting in a batch: 0; being sent by another run: 2; to send: 3" in capsys.readouterr().out
        assert main([*argv, "--no-progress"]) == 0
        out, err = capsys.readouterr()
        assert "5 requests: 0 already cached, 0 waiting in a batch, 2 being sent by another run, 3 answered" in out
        assert "2 requests are being sent by another run on this cache; rerun later for them" in err
        sent = {e.body["messages"][-1]["content"] for e in fake_openai.chat_log()}
        assert sent == {r.body["messages"][-1]["content"] for r in requests[2:]}
        assert [owner for _, owner in claim_rows(cache_path)] == [busy.owner] * 2  # the run released its own


def test_engine_releases_its_claims_when_it_stops_on_an_error(fake_openai, tmp_path):
    fake_openai.set_access(api_key="sk-right")
    from tests.llm.providers.test_openai import chat_request

    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    teacher = OpenAIChat(base_url=fake_openai.base_url, api_key="sk-wrong")
    with pytest.raises(TeacherError, match="HTTP 401"):
        run(teacher, [chat_request(i) for i in range(6)], cache, EngineSettings(progress=False, concurrency=2))
    assert claim_rows(cache.path) == []


def write_schema_1_cache(path) -> None:
    """A cache as keypoint-instruct wrote it before claims (schema 1), with one answer and one batch."""
    schema_1 = _schema().split("-- Schema 2")[0]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")  # as ResponseCache left it
        db.executescript(schema_1)
        db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO responses VALUES ('k1', 'conversation', 7, 'val2014', 'gpt-4o-2024-08-06', 'v1', 'text', "
            "'stop', 10, 5, 0, 0.001, 0.5, '2026-01-01T00:00:00+00:00')"
        )
        db.execute("INSERT INTO batches (batch_id, status, created_at, updated_at) VALUES ('b1', 'done', 'x', 'x')")


def test_a_schema_1_cache_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite"
    write_schema_1_cache(path)
    with ResponseCache(path) as cache:
        assert [r.key for r in cache.iter_responses()] == ["k1"] and cache.get("k1").text == "text"
        assert BatchJobs(cache).ids() == {"b1"}
        assert Claims(cache).claim(["k1", "k2"]).claimed == {"k2"}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    with ResponseCache(path) as cache:  # opening it again changes nothing
        assert cache.stats().responses == 1


def write_schema_2_cache(path) -> None:
    """A cache as keypoint-instruct wrote it before batch_details (schema 2): a collected batch of 3 requests."""
    schema_2 = _schema().split("-- Schema 3")[0]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(schema_2)
        db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO batches (batch_id, status, n_requests, created_at, updated_at, collected_at) "
            "VALUES ('b2', 'completed', 3, 'x', 'x', '2026-01-01T00:00:00')"
        )
        db.execute("INSERT INTO batch_requests VALUES ('k2', 'b2', 'conversation', 7, 'val2014', 'v1')")


@pytest.mark.parametrize("locked", [False, True])
def test_a_schema_2_cache_keeps_its_batches_and_invents_no_counts(tmp_path, capsys, monkeypatch, locked):
    path = tmp_path / "old.sqlite"
    write_schema_2_cache(path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the default endpoint's client; nothing is asked (collected)
    with read_only(path) if locked else nullcontext():
        assert main(["batch", "status", "--cache", str(path)]) == 0
        out = capsys.readouterr().out
        assert out.strip() == "b2  completed   3 requests  collected", out  # not "3/3 done, 0 failed"
        with ResponseCache(path) as cache:
            [row] = BatchJobs(cache).rows()
            assert (row["batch_id"], row["base_url"], row["completed"]) == ("b2", None, None)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == (2 if locked else SCHEMA_VERSION)
    assert main(["cache", "merge", str(tmp_path / "all.sqlite"), str(path)]) == 0
    with ResponseCache(tmp_path / "all.sqlite") as merged:
        assert [r["batch_id"] for r in BatchJobs(merged).rows()] == ["b2"]


def test_a_cache_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    ResponseCache(path, create=True).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(CacheError, match="schema 99, written by a newer keypoint-instruct"):
        ResponseCache(path)


def test_merge_carries_no_claims(tmp_path, capsys):
    shard = ResponseCache(tmp_path / "s.sqlite", create=True)
    request = make_request(1)
    shard.put(request, make_completion(), 0.1)
    Claims(shard).claim([make_request(2).key])
    shard.close()
    old = tmp_path / "old.sqlite"
    write_schema_1_cache(old)
    assert main(["cache", "merge", str(tmp_path / "all.sqlite"), str(tmp_path / "s.sqlite"), str(old)]) == 0
    assert claim_rows(tmp_path / "all.sqlite") == []
    with ResponseCache(tmp_path / "all.sqlite") as merged:
        assert {r.key for r in merged.iter_responses()} == {request.key, "k1"}


def test_a_retry_is_not_sent_when_another_run_took_the_claim_over(fake_openai, tmp_path):
    from tests.llm.providers.test_openai import chat_request

    cache_path = tmp_path / "c.sqlite"
    requests = [chat_request(i) for i in range(3)]
    lost = requests[0]
    other = f"other-{socket.gethostname()}:1:beef"  # a run on another machine sharing the file

    def take_over(body: dict) -> str | None:
        """The first attempt at ``lost`` fails; meanwhile our lease lapsed and the other run claimed the key."""
        if body["messages"][-1]["content"] != lost.body["messages"][-1]["content"]:
            return None
        with sqlite3.connect(cache_path) as db:
            taken = db.execute(
                "UPDATE claims SET owner = ?, expires_at = ? WHERE key = ? AND owner != ?",
                (other, time.time() + 600, lost.key, other),
            ).rowcount
        return "500" if taken else None

    fake_openai.set_faults(rule=take_over)
    cache = ResponseCache(cache_path, create=True)
    teacher = OpenAIChat(base_url=fake_openai.base_url)
    settings = EngineSettings(progress=False, concurrency=1, backoff_base_s=0.01, backoff_max_s=0.02)
    summary = run(teacher, requests, cache, settings)
    sent = [e.body["messages"][-1]["content"] for e in fake_openai.chat_log()]
    assert sent.count(lost.body["messages"][-1]["content"]) == 1  # never sent again under the other run's claim
    assert (summary.answered, summary.claimed_elsewhere) == (2, 1)
    assert cache.get(lost.key) is None and claim_rows(cache_path) == [(lost.key, other)]


@contextmanager
def read_only(path):
    """Make ``path`` read-only, for root too (immutable), while the block runs."""
    if os.geteuid() != 0:
        path.chmod(0o444)
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root where chattr +i is not allowed: cannot make a file read-only")
    try:
        yield path
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


def test_a_read_only_schema_1_cache_is_read_as_it_is_and_not_sent_from(coco_root, tmp_path, capsys):
    path = tmp_path / "old.sqlite"
    write_schema_1_cache(path)
    argv = ["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014"]
    argv += ["--cache", str(path), "--limit", "1", "--teacher", "offline", "--no-progress"]
    with read_only(path):
        assert main(["cache", "stats", "--cache", str(path)]) == 0  # as before the upgrade existed
        assert "money spent: $0.0010" in capsys.readouterr().out
        assert main([*argv, "--dry-run"]) == 0
        assert "already cached: 0; waiting in a batch: 0; to send: 1" in capsys.readouterr().out
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len([x for x in err.splitlines() if "error:" in x]) == 1
        assert f"{path} is read-only and of cache schema 1" in err
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1 and db.execute(
            "SELECT COUNT(*) FROM responses"
        ).fetchone() == (1,)


def test_a_run_in_another_pid_namespace_on_this_host_waits_for_the_lease(tmp_path):
    """A container with the host's network has the host's name but its own process ids (docker --network host):
    a live run's process id means nothing there, so its claims must hold until their lease ends."""
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    keys = [make_request(i).key for i in range(2)]
    Claims(cache).claim(keys)  # held by this live process
    probe = (
        "import sys; from keypoint_instruct.llm.store.cache import ResponseCache; "
        "from keypoint_instruct.llm.store.claims import Claims; "
        "got = Claims(ResponseCache(sys.argv[1])).claim(sys.argv[2:]); print(len(got.claimed), len(got.held))"
    )
    try:
        done = subprocess.run(
            ["unshare", "--pid", "--fork", sys.executable, "-c", probe, str(cache.path), *keys],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        pytest.skip("no unshare command: cannot start a process in its own PID namespace")
    if done.returncode != 0 and "Traceback" not in done.stderr:
        pytest.skip(f"cannot start a process in its own PID namespace here: {done.stderr.strip()}")
    assert done.stdout.split() == ["0", "2"], done.stderr


@pytest.mark.parametrize("command", ["generate", "batch submit"])
def test_a_read_only_cache_is_one_line_and_nothing_is_sent(fake_openai, coco_root, tmp_path, capsys, command):
    path = tmp_path / "c.sqlite"
    ResponseCache(path, create=True).close()
    argv = [*command.split(), "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014"]
    argv += ["--cache", str(path), "--limit", "2", "--base-url", fake_openai.base_url]
    argv += ["--no-progress"] if command == "generate" else []
    with read_only(path):
        code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("INFO ")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert f"{path}" in lines[0] and "readonly database" in lines[0]
    assert fake_openai.log() == []  # nothing uploaded or sent: it could not have been recorded


def test_an_absurdly_long_lease_keeps_its_renewal_thread_alive(fake_openai, coco_root, tmp_path, capsys, monkeypatch):
    """A quarter of ``--claim-lease 1e12`` is past what a thread can wait (threading.TIMEOUT_MAX): the keep-alive
    thread died with an OverflowError traceback as the run started. The wait is capped; the run sends and ends."""
    crashed = []
    monkeypatch.setattr("threading.excepthook", lambda hook: crashed.append(hook.exc_type))
    argv = ["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014"]
    argv += ["--cache", str(tmp_path / "c.sqlite"), "--limit", "2", "--base-url", fake_openai.base_url]
    assert main([*argv, "--no-progress", "--claim-lease", "1e12"]) == 0
    assert "2 answered" in capsys.readouterr().out and crashed == []
    assert claim_rows(tmp_path / "c.sqlite") == []  # released at the end as usual


def dead_owner() -> str:
    """The claim owner of a run on this machine that was killed outright (its process is gone)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{this_machine()}:{int(done.stdout)}:dead"


def test_a_rerun_says_what_becomes_of_every_claim_a_killed_run_left(fake_openai, tmp_path, caplog):
    import logging

    from tests.llm.providers.test_openai import chat_request

    requests = [chat_request(i) for i in range(6)]
    answered = [chat_request(i) for i in range(10, 12)]  # answered by another run after the kill
    foreign = [chat_request(i) for i in range(20, 23)]  # another selection's keys
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    owner, expires = dead_owner(), time.time() + 600
    for request in requests[:4] + answered + foreign:
        cache.db.execute("INSERT INTO claims VALUES (?, ?, ?)", (request.key, owner, expires))
    for request in answered:
        cache.put(request, make_completion(), 0.1)
    assert len(Claims(cache).stale()) == 9
    settings = EngineSettings(progress=False, concurrency=2)  # claimed two at a time, as the run reaches them
    with caplog.at_level(logging.INFO):
        summary = run(OpenAIChat(base_url=fake_openai.base_url), requests + answered, cache, settings)
    said = [r.getMessage() for r in caplog.records if "claims of runs that ended" in r.getMessage()]
    assert said == [
        "the cache holds 9 claims of runs that ended without releasing them (a run killed with kill -9 leaves its "
        "claims): 4 on requests of this run, taken over as the run reaches them (2 at a time); 2 on requests "
        "answered since, removed; 3 on requests this run does not send (another selection, or waiting in a batch), "
        "left for a run that sends them"
    ]
    assert summary.answered == 6 and summary.taken_over == 4
    assert summary.line().endswith("; took over 4 claims of ended runs")
    assert sorted(claim_rows(cache.path)) == sorted((r.key, owner) for r in foreign)  # only those are left
