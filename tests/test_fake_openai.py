"""The fake OpenAI server, exercised with the official client over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import openai
import pytest
from openai import OpenAI

from tests.fake_openai import FakeOpenAI, default_responder, detect_task

SYSTEM = {"role": "system", "content": "You write a conversation about the poses of the people in an image."}
USER = {"role": "user", "content": "A man rides a wave.\n\nperson: [0.1, 0.2, 0.3, 0.4]"}


def client(server: FakeOpenAI) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)


def test_chat_answer_has_usage_and_task_format(fake_openai):
    raw = client(fake_openai).chat.completions.with_raw_response.create(model="gpt-4o", messages=[SYSTEM, USER])
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text.startswith("Question:\n") and "\n===\nAnswer:\n" in text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.prompt_tokens_details.cached_tokens == 0
    assert "x-ratelimit-limit-requests" not in raw.headers  # no limits set
    [entry] = fake_openai.chat_log()
    assert entry.status == 200 and entry.body["messages"][1] == USER


def test_default_responder_is_deterministic_per_request():
    body = {"model": "m", "messages": [SYSTEM, USER]}
    assert default_responder(body) == default_responder(json.loads(json.dumps(body)))
    other = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "Two girls play tennis."}]}
    assert default_responder(body) != default_responder(other)
    assert detect_task({"messages": [{"role": "system", "content": "Write a detailed description."}]}) == (
        "detailed_description"
    )
    assert detect_task({"messages": [{"role": "system", "content": "Ask one challenging question."}]}) == (
        "complex_reasoning"
    )


def test_cached_tokens_reported_for_a_repeated_long_prefix(fake_openai):
    prefix = [{"role": "system", "content": "pose " * 1200}]
    c = client(fake_openai)
    first = c.chat.completions.create(model="m", messages=[*prefix, {"role": "user", "content": "one"}])
    second = c.chat.completions.create(model="m", messages=[*prefix, {"role": "user", "content": "two"}])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 1024 <= cached <= second.usage.prompt_tokens and cached % 128 == 0


def test_scripted_faults_reach_the_client(fake_openai):
    fake_openai.set_faults(
        script=["429", "500", "drop", "non_json", "length", "content_filter", None], retry_after_s=0.25
    )
    c = client(fake_openai)
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="m", messages=[USER])
    assert err.value.response.headers["retry-after-ms"] == "250"
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=[USER])
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=[USER])
    with pytest.raises(json.JSONDecodeError):
        c.chat.completions.create(model="m", messages=[USER])
    assert c.chat.completions.create(model="m", messages=[USER]).choices[0].finish_reason == "length"
    assert c.chat.completions.create(model="m", messages=[USER]).choices[0].finish_reason == "content_filter"
    assert c.chat.completions.create(model="m", messages=[USER]).choices[0].finish_reason == "stop"
    assert [e.status for e in fake_openai.chat_log()] == [429, 500, 0, 200, 200, 200, 200]
    assert [e.fault for e in fake_openai.chat_log()] == [
        "429",
        "500",
        "drop",
        "non_json",
        "length",
        "content_filter",
        None,
    ]


def test_stall_delays_the_answer(fake_openai):
    fake_openai.set_faults(script=["stall"], stall_s=1.0)
    c = OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="m", messages=[USER])


def test_seeded_fault_rate_is_reproducible():
    def statuses(seed: int) -> list[int]:
        with FakeOpenAI(seed=seed) as server:
            server.set_faults(rate=0.5, kinds=["500"], seed=seed)
            c = client(server)
            for _ in range(20):
                try:
                    c.chat.completions.create(model="m", messages=[USER])
                except openai.InternalServerError:
                    pass
            return [e.status for e in server.chat_log()]

    first = statuses(3)
    assert first == statuses(3) and 0 < first.count(500) < 20


def test_rate_limit_headers_and_429(fake_openai):
    fake_openai.set_limits(rpm=60, tpm=60_000)
    c = client(fake_openai)
    raw = c.chat.completions.with_raw_response.create(model="m", messages=[USER], max_tokens=50)
    assert raw.headers["x-ratelimit-limit-requests"] == "60"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 1000
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="m", messages=[USER], max_tokens=50)
    assert 0 < int(err.value.response.headers["retry-after-ms"]) <= 1000
    assert [e.status for e in fake_openai.chat_log()] == [200, 429]


def test_custom_responder_and_unknown_route(fake_openai):
    fake_openai.set_responder(lambda body: "judge: 7 8")
    c = client(fake_openai)
    assert c.chat.completions.create(model="m", messages=[USER]).choices[0].message.content == "judge: 7 8"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("nope")


def test_batch_round_trip_with_errors(fake_openai):
    lines = [
        {
            "custom_id": f"k{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [SYSTEM, {"role": "user", "content": f"ctx {i}"}]},
        }
        for i in range(6)
    ]
    c = client(fake_openai)
    uploaded = c.files.create(
        file=("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch"
    )
    assert fake_openai.log()[-1].body == {"purpose": "batch", "filename": "in.jsonl", "bytes": uploaded.bytes}
    fake_openai.set_batch(error_ids={"k2"})
    batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert c.batches.retrieve(batch.id).status == "in_progress"
    assert fake_openai.complete_batches() == 1
    batch = c.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 5 and batch.request_counts.failed == 1
    out = [json.loads(x) for x in c.files.content(batch.output_file_id).text.splitlines()]
    err = [json.loads(x) for x in c.files.content(batch.error_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in out) == ["k0", "k1", "k3", "k4", "k5"]
    assert [x["custom_id"] for x in err] == ["k2"] and err[0]["response"]["status_code"] == 500
    assert all(x["response"]["body"]["choices"][0]["message"]["content"].startswith("Question:") for x in out)


def test_batch_completes_after_delay(fake_openai):
    fake_openai.set_batch(delay_s=0.0)
    c = client(fake_openai)
    f = c.files.create(file=("a.jsonl", b'{"custom_id":"a","body":{"model":"m","messages":[]}}\n'), purpose="batch")
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert c.batches.retrieve(batch.id).status == "completed"


def test_standalone_process_prints_url_and_logs(tmp_path):
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        c = OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10)
        assert c.chat.completions.create(model="m", messages=[USER]).choices[0].message.content
        for _ in range(50):  # the log line is flushed right after the answer is computed
            if log.exists() and log.read_text():
                break
            time.sleep(0.05)
        [entry] = [json.loads(x) for x in log.read_text().splitlines()]
        assert entry["path"] == "/v1/chat/completions" and entry["status"] == 200
    finally:
        proc.kill()
        proc.wait()


def test_unknown_model_and_wrong_key_are_refused_like_openai(fake_openai):
    fake_openai.set_access(models={"gpt-4o"}, api_key="sk-right-key-1234")
    good = OpenAI(base_url=fake_openai.base_url, api_key="sk-right-key-1234", max_retries=0, timeout=10)
    assert good.chat.completions.create(model="gpt-4o", messages=[USER]).choices[0].message.content
    with pytest.raises(openai.NotFoundError) as err:
        good.chat.completions.create(model="gpt-4x", messages=[USER])
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError) as err:
        client(fake_openai).chat.completions.create(model="gpt-4o", messages=[USER])
    assert err.value.code == "invalid_api_key" and "sk-test" not in str(err.value)  # masked, like OpenAI
    assert [e.status for e in fake_openai.chat_log()] == [200, 404, 401]


@pytest.mark.parametrize("status", ["expired", "cancelled", "failed"])
def test_batches_can_end_unfinished(fake_openai, status):
    lines = [
        {"custom_id": f"k{i}", "body": {"model": "m", "messages": [{"role": "user", "content": f"c{i}"}]}}
        for i in range(4)
    ]
    c = client(fake_openai)
    f = c.files.create(file=("a.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch")
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert fake_openai.end_batches(status, answered=0.5) == 1
    batch = c.batches.retrieve(batch.id)
    assert batch.status == status
    if status == "failed":
        assert batch.output_file_id is None and batch.error_file_id is None and batch.errors.data[0].code
        return
    out = [json.loads(x)["custom_id"] for x in c.files.content(batch.output_file_id).text.splitlines()]
    err = [json.loads(x) for x in c.files.content(batch.error_file_id).text.splitlines()]
    assert sorted(out) == ["k0", "k1"] and [x["custom_id"] for x in err] == ["k2", "k3"]
    assert err[0]["error"]["code"] == ("batch_expired" if status == "expired" else "batch_cancelled")
