"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (no network, no key).

It is a small asyncio HTTP/1.1 server (keep-alive, Content-Length and chunked bodies) that answers enough of the
OpenAI API for the official ``openai`` client: chat completions, files and batches.

Python API (the ``fake_openai`` pytest fixture yields a started :class:`FakeOpenAI`)::

    server = FakeOpenAI(latency=0.0, rpm=None, tpm=None, seed=0, log_path=None).start()  # or: with FakeOpenAI() as s
    server.base_url               # "http://127.0.0.1:<port>/v1": give it to OpenAI(base_url=..., api_key="any")
    server.port
    server.set_responder(fn)      # fn(body: dict) -> str, the assistant text; None restores default_responder
    server.set_faults(rate=0.2, kinds=FAULT_KINDS, seed=0, script=None, rule=None, stall_s=3.0, retry_after_s=0.1)
                                  # script: fault names (None = answer normally) used by the next chat requests in
                                  # arrival order; rule: fn(body) -> fault name | None, asked after the script
                                  # runs out; then the seeded rate picks a kind from `kinds`.
    server.set_latency(seconds)   # added before every chat answer
    server.set_limits(rpm=None, tpm=None, window_s=1.0)   # token buckets; 429 + Retry-After when empty
    server.set_batch(delay_s=None, error_rate=0.0, error_ids=(), drop_creates=0, hold_creates_s=0.0,
                     make_held=True, line_faults=None)
                                  # delay None: complete only on complete_batches(); drop_creates: the next N
                                  # batch creations are made but their answer is lost (a dropped connection);
                                  # hold_creates_s: every batch creation is answered that late (a client killed
                                  # meanwhile never learns the batch id); make_held=False: a held creation makes
                                  # no batch and ends in a 500 (the provider never got to it); line_faults:
                                  # {custom_id: kind} answers that line's output as a chat answer with that fault
                                  # ("length", "content_filter", "refusal", "no_usage", "null_finish", "empty")
    server.set_access(models=None, api_key=None, reasoning_models=())
                                  # models: the only model names chat and batch lines accept (others: 404
                                  # model_not_found); api_key: the only Bearer key accepted (others: 401
                                  # invalid_api_key, whose message echoes the key masked, as OpenAI does);
                                  # reasoning_models: names answered as OpenAI's o-series and gpt-5 answer: 400
                                  # unsupported_parameter for max_tokens (they take max_completion_tokens) and
                                  # 400 unsupported_value for a temperature other than 1
    server.complete_batches()     # finish every pending batch now
    server.forget_batch(batch_id) # the provider no longer knows the batch: 404 on every request about it
    server.end_batches(status, answered=0.5, errors=None)
                                  # end every pending batch as "expired" or "cancelled" (the first `answered`
                                  # share of lines answered, the rest in the error file) or "failed" (no files;
                                  # `errors` become the batch's errors.data)
    server.log()                  # list of LogEntry (time, method, path, body, status, fault, tokens)
    server.chat_log(ok_only=False)   # only the chat-completion entries
    server.clear_log()
    server.stop()

Faults (``FAULT_KINDS``): ``"429"`` (with ``retry-after`` and ``retry-after-ms``), ``"500"``, ``"drop"`` (the
connection is closed with no answer), ``"stall"`` (waits ``stall_s`` seconds, then answers normally), ``"non_json"``
(status 200 with a body that is not JSON), ``"length"`` (a cut answer with ``finish_reason: "length"``) and
``"content_filter"``. ``EXTRA_FAULTS`` are real providers' answers that the seeded rate never picks unless they
are named in ``kinds``: ``"insufficient_quota"`` (429 with code insufficient_quota: the account has no credit),
``"payment_required"`` (402, as DeepSeek and OpenRouter say it), ``"context_length"`` (400
context_length_exceeded), ``"no_usage"`` (an answer without ``usage``), ``"refusal"`` (``content`` null and the
``refusal`` field set), ``"null_finish"`` (``finish_reason`` null) and ``"empty"`` (content ``""`` with
``finish_reason: "stop"``, billed for its prompt). ``LogEntry.query`` is the URL's query string.

Rate limits: with ``rpm``/``tpm`` set, every chat answer carries ``x-ratelimit-limit|remaining|reset-requests|tokens``
headers. The limits are token buckets refilled continuously at rpm/60 and tpm/60 per second, holding at most
``window_s`` seconds of allowance (at least one request). A request costs 1 request and ``prompt_tokens +
max_tokens`` tokens (``max_tokens`` absent: the answer's tokens). Over the limit: 429 with Retry-After.

Token counts are cheap estimates, not o200k: ``ceil(characters / 4) + 4`` per message. ``cached_tokens`` imitates
the provider's prompt cache: when every message but the last was seen before in the same order and comes to at
least 1024 tokens, that prefix (rounded down to a multiple of 128) is reported as cached.

Batches: ``POST /v1/files`` (multipart, purpose "batch"), ``GET /v1/files/{id}`` and ``/v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches`` (all, newest first), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel`` (as OpenAI: the batch is ``cancelling``, and on the next read ``cancelled`` with
the first half of its lines answered and the rest in the error file; a batch that has ended answers 409).
A batch answers every input line with the responder; lines whose ``custom_id``
is in ``error_ids`` (or picked by the seeded ``error_rate``) go to an error file instead. Output lines are shuffled.
``POST /_fake/complete_batches`` completes batches of a standalone server. Lines whose model is not served (see
``set_access``) go to the error file with ``model_not_found``.

Standalone: ``python -m tests.fake_openai --port 0 [--latency S] [--rpm N] [--tpm N] [--fault-rate F]
[--fault-kinds 429,500] [--seed N] [--batch-delay S] [--models M,..] [--api-key K] [--log FILE]`` prints its base
URL on the first stdout line, then serves until killed. ``--log`` appends one JSON line per request (flushed), for
benchmarks and crash tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

FAULT_KINDS = ("429", "500", "drop", "stall", "non_json", "length", "content_filter")
EXTRA_FAULTS = (
    "insufficient_quota",
    "payment_required",
    "context_length",
    "no_usage",
    "refusal",
    "null_finish",
    "empty",
)
Responder = Callable[[dict], str]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


@dataclass
class LogEntry:
    """One request the server received, in arrival order."""

    time: float
    method: str
    path: str
    body: Any  # parsed JSON, {"purpose", "filename", "bytes"} for an upload, or None
    status: int = 0  # 0: the connection was dropped with no answer
    fault: str | None = None
    tokens: int = 0  # what the request cost against the TPM limit
    query: str = ""  # the URL's query string, e.g. "api-version=2024-10-21"


# --------------------------------------------------------------------------- default answers


def _seed_of(body: dict) -> int:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def detect_task(body: dict) -> str:
    """The task a chat body asks for, guessed from its system message: one of the three tasks or "other"."""
    system = " ".join(_text_of(m.get("content")) for m in body.get("messages", []) if m.get("role") == "system")
    low = system.lower()
    if "complex reasoning" in low or "challenging question" in low:
        return "complex_reasoning"
    if "detailed description" in low or "in-depth description" in low:
        return "detailed_description"
    if "conversation" in low:
        return "conversation"
    return "other"


_SUBJECTS = ("the person on the left", "the man in the middle", "the woman near the front", "the child", "the player")
_ACTIONS = (
    "standing with the weight on one leg",
    "leaning forward with both arms reaching out",
    "crouching with bent knees",
    "turning the torso to the right",
    "raising one arm above the head",
    "sitting with the legs crossed",
    "walking with a long stride",
    "bending at the waist",
)
_QUESTIONS = (
    "What is {s} doing?",
    "How is {s} positioned?",
    "Where are {s}'s arms?",
    "Is {s} interacting with anyone?",
    "What does the posture of {s} suggest?",
)


def default_responder(body: dict) -> str:
    """A plausible, deterministic answer in the response format of the task detected from the system message."""
    rng = random.Random(_seed_of(body))
    task = detect_task(body)
    messages = body.get("messages", [])
    context = _text_of(messages[-1].get("content")) if messages else ""
    caption = next((line.strip() for line in context.splitlines() if line.strip()), "A scene with people.")
    people = sum(1 for line in context.splitlines() if line.startswith("person:"))
    if task in ("conversation", "complex_reasoning"):
        n_pairs = 1 if task == "complex_reasoning" else rng.randint(2, 4)
        pairs = []
        for _ in range(n_pairs):
            subject = rng.choice(_SUBJECTS)
            question = rng.choice(_QUESTIONS).format(s=subject)
            if task == "complex_reasoning":
                question = f"Considering how {subject} is posed, what is likely to happen next, and why?"
            answer = (
                f"{subject.capitalize()} is {rng.choice(_ACTIONS)}, which fits the scene: {caption.rstrip('.')}. "
                f"The body is balanced and the arms follow the movement."
            )
            pairs.append(f"Question:\n{question}\n===\nAnswer:\n{answer}")
        return "\n===\n".join(pairs)
    if task == "detailed_description":
        return (
            f"{caption} The image shows {max(people, 1)} "
            f"{'person' if people <= 1 else 'people'}. {rng.choice(_SUBJECTS).capitalize()} is "
            f"{rng.choice(_ACTIONS)}, while {rng.choice(_SUBJECTS)} is {rng.choice(_ACTIONS)}. "
            "Their postures suggest they are focused on the same activity."
        )
    return f"This is a fake answer ({rng.randrange(10**6)})."


def estimate_tokens(messages: Iterable[dict]) -> int:
    """The server's cheap token estimate of a message list (not o200k)."""
    return sum(math.ceil(len(_text_of(m.get("content"))) / 4) + 4 for m in messages)


# --------------------------------------------------------------------------- the server


class _Bucket:
    def __init__(self, per_minute: float, window_s: float, minimum: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * window_s, minimum)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate)

    def reset_s(self) -> float:
        return (self.capacity - self.level) / self.rate


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:.0f}s" if minutes else f"{secs:.3g}s"


class FakeOpenAI:
    """An OpenAI-compatible server; see the module docstring for the API."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rpm: float | None = None,
        tpm: float | None = None,
        seed: int = 0,
        log_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._log: list[LogEntry] = []
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self._responder: Responder = default_responder
        self._latency = latency
        self.set_faults(seed=seed)
        self.set_limits(rpm, tpm)
        self.set_batch()
        self.set_access()
        self._prefixes: set[str] = set()
        self._files: dict[str, dict] = {}
        self._batches: dict[str, dict] = {}
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ----------------------------------------------------------------- settings
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def set_responder(self, fn: Responder | None) -> None:
        self._responder = fn or default_responder

    def set_faults(
        self,
        rate: float = 0.0,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        script: Iterable[str | None] | None = None,
        rule: Callable[[dict], str | None] | None = None,
        stall_s: float = 3.0,
        retry_after_s: float = 0.1,
    ) -> None:
        kinds = tuple(kinds)
        known = FAULT_KINDS + EXTRA_FAULTS
        unknown = [k for k in kinds + tuple(k for k in (script or ()) if k) if k not in known]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; expected some of {known}")
        with self._lock:
            self._fault_rate, self._fault_kinds = rate, kinds
            self._fault_rng = random.Random(seed)
            self._fault_script = list(script or ())
            self._fault_rule = rule
            self._stall_s, self._retry_after_s = stall_s, retry_after_s

    def set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def set_limits(self, rpm: float | None = None, tpm: float | None = None, window_s: float = 1.0) -> None:
        with self._lock:
            self._rpm = _Bucket(rpm, window_s, 1) if rpm else None
            self._tpm = _Bucket(tpm, window_s, 0) if tpm else None

    def set_batch(
        self,
        delay_s: float | None = None,
        error_rate: float = 0.0,
        error_ids: Iterable[str] = (),
        seed: int = 0,
        drop_creates: int = 0,
        hold_creates_s: float = 0.0,
        make_held: bool = True,
        line_faults: dict[str, str] | None = None,
    ) -> None:
        self._batch_line_faults = dict(line_faults or {})
        self._batch_delay, self._batch_error_rate = delay_s, error_rate
        self._batch_error_ids, self._batch_rng = set(error_ids), random.Random(seed)
        self._drop_creates = drop_creates  # the next N batch creations succeed but their answer is lost
        self._hold_creates_s, self._make_held = hold_creates_s, make_held

    def set_access(
        self, models: Iterable[str] | None = None, api_key: str | None = None, reasoning_models: Iterable[str] = ()
    ) -> None:
        self._models = set(models) if models is not None else None
        self._api_key = api_key
        self._reasoning_models = set(reasoning_models)

    # ----------------------------------------------------------------- log
    def log(self) -> list[LogEntry]:
        with self._lock:
            return list(self._log)

    def chat_log(self, ok_only: bool = False) -> list[LogEntry]:
        return [e for e in self.log() if e.path == "/v1/chat/completions" and (e.status == 200 or not ok_only)]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LogEntry) -> None:
        with self._lock:
            self._log.append(entry)
            if self._log_file:
                self._log_file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
                self._log_file.flush()

    # ----------------------------------------------------------------- life cycle
    async def serve(self, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        if ready:
            ready.set()
        async with self._server:
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                pass

    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self.serve(ready),), daemon=True, name="fake-openai")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._server:

            def _close() -> None:
                for writer in list(self._writers):
                    writer.transport.abort()
                self._server.close()
                for task in asyncio.all_tasks(self._loop):
                    task.cancel()

            self._loop.call_soon_threadsafe(_close)
        if self._thread:
            self._thread.join(10)
            self._thread = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    raw = await self._read_chunked(reader)
                else:
                    raw = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                path, _, query = target.partition("?")
                answer = await self._dispatch(method, path, headers, raw, query)
                if answer is None:  # dropped connection
                    writer.transport.abort()
                    return
                status, extra, payload = answer
                keep = headers.get("connection", "").lower() != "close"
                out = [
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                    f"content-length: {len(payload)}",
                    f"connection: {'keep-alive' if keep else 'close'}",
                ]
                extra.setdefault("content-type", "application/json")
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def _dispatch(self, method: str, path: str, headers: dict, raw: bytes, query: str = ""):
        entry = LogEntry(time=time.time(), method=method, path=path, body=None, query=query)
        try:
            if self._api_key is not None and headers.get("authorization") != f"Bearer {self._api_key}":
                answer = _refuse_key(headers.get("authorization", ""))
            elif method == "POST" and path == "/v1/chat/completions":
                entry.body = json.loads(raw)
                answer = await self._chat(entry.body, entry)
            elif method == "POST" and path == "/v1/files":
                answer = self._upload(headers.get("content-type", ""), raw, entry)
            elif method == "GET" and path.startswith("/v1/files/"):
                answer = self._get_file(path[len("/v1/files/") :])
            elif method == "GET" and path == "/v1/batches":
                answer = self._list_batches()
            elif method == "POST" and path == "/v1/batches":
                entry.body = json.loads(raw)
                answer = await self._create_held(entry.body)
            elif path.startswith("/v1/batches/"):
                answer = self._batch_route(method, path[len("/v1/batches/") :])
            elif method == "POST" and path == "/_fake/complete_batches":
                answer = (200, {}, json.dumps({"completed": self.complete_batches()}).encode())
            else:
                answer = _error(404, f"no route for {method} {path}", "not_found")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError) as err:
            answer = _error(400, f"bad request: {err}", "invalid_request_error")
        entry.status = answer[0] if answer else 0
        self._record(entry)
        return answer

    # ----------------------------------------------------------------- chat completions
    def _next_fault(self, body: dict) -> str | None:
        with self._lock:
            if self._fault_script:
                return self._fault_script.pop(0)
            if self._fault_rule and (kind := self._fault_rule(body)):
                return kind
            if self._fault_rate and self._fault_rng.random() < self._fault_rate:
                return self._fault_rng.choice(self._fault_kinds)
        return None

    def _make_completion(self, body: dict, fault: str | None = None) -> tuple[dict, int]:
        messages = body.get("messages", [])
        text = self._responder(body)
        finish = "stop"
        if fault == "length":
            text, finish = text[: max(1, len(text) // 2)], "length"
        elif fault == "content_filter":
            text, finish = "", "content_filter"
        elif fault == "empty":
            text = ""
        elif fault == "refusal":
            text = "I'm sorry, but I can't help with that request."
        prompt_tokens = estimate_tokens(messages)
        completion_tokens = math.ceil(len(text) / 4)
        prefix_tokens = estimate_tokens(messages[:-1])
        prefix_key = hashlib.sha256(json.dumps(messages[:-1], sort_keys=True).encode()).hexdigest()
        cached = 0
        with self._lock:
            if prefix_tokens >= 1024 and prefix_key in self._prefixes:
                cached = prefix_tokens // 128 * 128
            self._prefixes.add(prefix_key)
            self._counter += 1
            number = self._counter
        message = {"role": "assistant", "content": text, "refusal": None}
        if fault == "refusal":
            message.update(content=None, refusal=text)
        completion = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": None if fault == "null_finish" else finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
        if fault == "no_usage":
            del completion["usage"]
        return completion, completion_tokens

    def _limit_headers(self) -> dict:
        headers = {}
        for name, bucket in (("requests", self._rpm), ("tokens", self._tpm)):
            if bucket:
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.limit))
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level)))
                headers[f"x-ratelimit-reset-{name}"] = _duration(bucket.reset_s())
        return headers

    def _admit(self, body: dict, entry: LogEntry) -> tuple | None:
        """Debit the rate limits, or return a 429 answer."""
        cost = estimate_tokens(body.get("messages", [])) + int(
            body.get("max_tokens") or body.get("max_completion_tokens") or 0
        )
        entry.tokens = cost
        with self._lock:
            for bucket in (self._rpm, self._tpm):
                if bucket:
                    bucket.refill()
            wait = max(self._rpm.wait_for(1) if self._rpm else 0.0, self._tpm.wait_for(cost) if self._tpm else 0.0)
            if wait > 0:
                entry.fault = "rate_limit"
                return _error(
                    429,
                    "Rate limit reached (fake server)",
                    "rate_limit_exceeded",
                    {**_retry_headers(wait), **self._limit_headers()},
                )
            if self._rpm:
                self._rpm.level -= 1
            if self._tpm:
                self._tpm.level -= cost
            return None

    def _unknown_model(self, body: dict):
        model = body.get("model")
        if self._models is None or model in self._models:
            return None
        return _error(404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found")

    def _refused_parameters(self, body: dict):
        """What OpenAI's reasoning models answer to the parameters they do not take."""
        if body.get("model") not in self._reasoning_models:
            return None
        if "max_tokens" in body:
            message = (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
            return _error(400, message, "unsupported_parameter", param="max_tokens")
        if body.get("temperature", 1) != 1:
            message = (
                f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                "Only the default (1) value is supported."
            )
            return _error(400, message, "unsupported_value", param="temperature")
        return None

    async def _chat(self, body: dict, entry: LogEntry):
        refused = self._unknown_model(body) or self._refused_parameters(body) or self._admit(body, entry)
        if refused:
            return refused
        fault = entry.fault = self._next_fault(body)
        if self._latency:
            await asyncio.sleep(self._latency)
        if fault == "429":
            return _error(
                429, "Rate limit reached (injected)", "rate_limit_exceeded", _retry_headers(self._retry_after_s)
            )
        if fault == "500":
            return _error(500, "The server had an error (injected)", "server_error")
        if fault == "drop":
            return None
        if fault == "stall":
            await asyncio.sleep(self._stall_s)
        if fault == "non_json":
            return 200, {"content-type": "application/json"}, b"<html><body>502 Bad Gateway</body></html>"
        if fault == "insufficient_quota":
            message = "You exceeded your current quota, please check your plan and billing details."
            return _error(429, message, "insufficient_quota")
        if fault == "payment_required":
            return _error(402, "Insufficient Balance", "invalid_request_error")
        if fault == "context_length":
            message = (
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 "
                "tokens. Please reduce the length of the messages."
            )
            return _error(400, message, "context_length_exceeded", param="messages")
        completion, completion_tokens = self._make_completion(body, fault)
        if not body.get("max_tokens"):  # TPM debit of the real answer when max_tokens was not given
            with self._lock:
                if self._tpm:
                    self._tpm.level -= completion_tokens
            entry.tokens += completion_tokens
        return 200, self._limit_headers(), json.dumps(completion).encode()

    # ----------------------------------------------------------------- files
    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-fake{self._counter}"

    def _store_file(self, data: bytes, purpose: str, filename: str) -> dict:
        meta = {
            "id": self._new_id("file"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self._files[meta["id"]] = {"meta": meta, "data": data}
        return meta

    def _upload(self, content_type: str, raw: bytes, entry: LogEntry):
        if "boundary=" not in content_type:
            return _error(400, "expected multipart/form-data", "invalid_request_error")
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip('"').encode()
        fields, filename, data = {}, "upload.jsonl", b""
        for part in raw.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            head, _, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            value = value[:-2] if value.endswith(b"\r\n") else value
            disposition = next(
                (h for h in head.decode("latin-1").split("\r\n") if h.lower().startswith("content-disposition")), ""
            )
            name = disposition.split('name="', 1)[1].split('"', 1)[0] if 'name="' in disposition else ""
            if 'filename="' in disposition:
                filename, data = disposition.split('filename="', 1)[1].split('"', 1)[0], value
            else:
                fields[name] = value.decode()
        entry.body = {"purpose": fields.get("purpose"), "filename": filename, "bytes": len(data)}
        if fields.get("purpose") not in ("batch", "fine-tune", "assistants", "user_data"):
            return _error(400, f"bad purpose {fields.get('purpose')!r}", "invalid_request_error")
        return 200, {}, json.dumps(self._store_file(data, fields["purpose"], filename)).encode()

    def _get_file(self, rest: str):
        file_id, _, tail = rest.partition("/")
        stored = self._files.get(file_id)
        if stored is None:
            return _error(404, f"no file {file_id}", "not_found")
        if tail == "content":
            return 200, {"content-type": "application/octet-stream"}, stored["data"]
        return 200, {}, json.dumps(stored["meta"]).encode()

    # ----------------------------------------------------------------- batches
    def _create_batch(self, body: dict):
        if body.get("input_file_id") not in self._files:
            return _error(400, f"no input file {body.get('input_file_id')!r}", "invalid_request_error")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(
                400, "expected endpoint /v1/chat/completions and completion_window 24h", "invalid_request_error"
            )
        lines = self._files[body["input_file_id"]]["data"].decode().splitlines()
        now = int(time.time())
        batch = {
            "id": self._new_id("batch"),
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 86400,
            "completed_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len([x for x in lines if x.strip()]), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self._batches[batch["id"]] = batch
        if self._drop_creates > 0:
            self._drop_creates -= 1
            return None
        return 200, {}, json.dumps(batch).encode()

    async def _create_held(self, body: dict):
        """A batch creation answered ``hold_creates_s`` late: made before the wait, or not at all (``make_held``)."""
        hold, make = self._hold_creates_s, self._make_held
        if hold and not make:
            await asyncio.sleep(hold)
            return _error(500, "The server had an error while creating the batch (injected)", "server_error")
        answer = self._create_batch(body)
        if hold:
            await asyncio.sleep(hold)
        return answer

    def _list_batches(self):
        data = sorted(self._batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
        page = {
            "object": "list",
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return 200, {}, json.dumps(page).encode()

    def _batch_route(self, method: str, rest: str):
        batch_id, _, action = rest.partition("/")
        batch = self._batches.get(batch_id)
        if batch is None:
            return _error(404, f"no batch {batch_id}", "not_found")
        if method == "POST" and action == "cancel":
            if batch["status"] not in ("validating", "in_progress", "finalizing", "cancelling"):
                return _error(409, f"Cannot cancel a batch with status {batch['status']}.", "invalid_request_error")
            batch.update(status="cancelling", cancelling_at=int(time.time()))
        elif method != "GET" or action:
            return _error(405, f"{method} /v1/batches/{rest} is not supported", "invalid_request_error")
        elif batch["status"] == "cancelling":
            self._complete(batch, status="cancelled", answered=0.5)
        elif (
            batch["status"] == "in_progress"
            and self._batch_delay is not None
            and time.time() - batch["created_at"] >= self._batch_delay
        ):
            self._complete(batch)
        return 200, {}, json.dumps(batch).encode()

    def forget_batch(self, batch_id: str) -> None:
        """Drop a batch as a provider that lost it would: every later request about it gets a 404."""
        self._batches.pop(batch_id)

    def complete_batches(self) -> int:
        """Complete every batch still in progress; return how many."""
        pending = [b for b in self._batches.values() if b["status"] == "in_progress"]
        for batch in pending:
            self._complete(batch)
        return len(pending)

    def end_batches(self, status: str, answered: float = 0.5, errors: list[dict] | None = None) -> int:
        """End every pending batch as expired, cancelled (partly answered) or failed (no files); return how many."""
        if status not in ("expired", "cancelled", "failed"):
            raise ValueError(f"unknown end status {status!r}; expected expired, cancelled or failed")
        pending = [b for b in self._batches.values() if b["status"] == "in_progress"]
        for batch in pending:
            if status == "failed":
                data = errors or [{"code": "invalid_request", "message": "injected validation failure", "line": 1}]
                batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": data})
            else:
                self._complete(batch, status=status, answered=answered)
        return len(pending)

    def _complete(self, batch: dict, status: str = "completed", answered: float = 1.0) -> None:
        outputs, errors = [], []
        lines = [line for line in self._files[batch["input_file_id"]]["data"].decode().splitlines() if line.strip()]
        cut = math.floor(len(lines) * answered)
        for number, line in enumerate(lines):
            item = json.loads(line)
            custom_id, request_id = item["custom_id"], self._new_id("req")
            failed = custom_id in self._batch_error_ids or (
                self._batch_error_rate and self._batch_rng.random() < self._batch_error_rate
            )
            unknown = self._unknown_model(item["body"])
            if number >= cut:  # not reached before the batch expired or was cancelled
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                errors.append(
                    {
                        "id": f"batch_{request_id}",
                        "custom_id": custom_id,
                        "response": None,
                        "error": {"code": code, "message": f"This request was not run: the batch was {status}."},
                    }
                )
            elif failed or unknown:
                if unknown:
                    code, payload = 404, json.loads(unknown[2])
                else:
                    code = 500
                    payload = {
                        "error": {
                            "message": "The server had an error (injected)",
                            "type": "server_error",
                            "code": "server_error",
                        }
                    }
                errors.append(
                    {
                        "id": f"batch_{request_id}",
                        "custom_id": custom_id,
                        "error": None,
                        "response": {"status_code": code, "request_id": request_id, "body": payload},
                    }
                )
            else:
                completion, _ = self._make_completion(item["body"], self._batch_line_faults.get(custom_id))
                outputs.append(
                    {
                        "id": f"batch_{request_id}",
                        "custom_id": custom_id,
                        "error": None,
                        "response": {"status_code": 200, "request_id": request_id, "body": completion},
                    }
                )
        self._batch_rng.shuffle(outputs)
        self._batch_rng.shuffle(errors)

        def _jsonl(rows: list[dict]) -> bytes:
            return "".join(json.dumps(r) + "\n" for r in rows).encode()

        if outputs:
            batch["output_file_id"] = self._store_file(_jsonl(outputs), "batch_output", "output.jsonl")["id"]
        if errors:
            batch["error_file_id"] = self._store_file(_jsonl(errors), "batch_output", "errors.jsonl")["id"]
        batch.update(
            status=status,
            **{f"{status}_at": int(time.time())},
            request_counts={"total": len(outputs) + len(errors), "completed": len(outputs), "failed": len(errors)},
        )


def _retry_headers(seconds: float) -> dict:
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, round(seconds * 1000)))}


def _refuse_key(authorization: str):
    key = authorization.removeprefix("Bearer ").strip()
    masked = f"{key[:3]}{'*' * 10}{key[-4:]}" if len(key) > 8 else "****"
    return _error(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account.",
        "invalid_api_key",
    )


def _error(status: int, message: str, code: str, headers: dict | None = None, param: str | None = None):
    error_type = "invalid_request_error" if code.startswith(("unsupported_", "context_length")) else code
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return status, dict(headers or {}), json.dumps(body).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_openai", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added before every chat answer")
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute before 429s")
    parser.add_argument("--tpm", type=float, default=None, help="tokens per minute before 429s")
    parser.add_argument("--window", type=float, default=1.0, help="seconds of allowance the rate buckets hold")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of chat requests given a fault")
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    parser.add_argument("--stall", type=float, default=3.0, help="seconds a 'stall' fault waits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault and batch-error draws")
    parser.add_argument(
        "--batch-delay",
        type=float,
        default=0.0,
        help="seconds after creation when a batch completes on its next status poll",
    )
    parser.add_argument("--batch-error-rate", type=float, default=0.0, help="share of batch lines that fail")
    parser.add_argument("--models", default=None, help="comma-separated models served (default: any name)")
    parser.add_argument("--api-key", default=None, help="the only API key accepted (default: any)")
    parser.add_argument("--log", default=None, help="append one JSON line per request to this file")
    args = parser.parse_args(argv)
    server = FakeOpenAI(latency=args.latency, seed=args.seed, log_path=args.log, port=args.port)
    server.set_limits(args.rpm, args.tpm, args.window)
    server.set_faults(
        rate=args.fault_rate, kinds=[k for k in args.fault_kinds.split(",") if k], seed=args.seed, stall_s=args.stall
    )
    server.set_batch(delay_s=args.batch_delay, error_rate=args.batch_error_rate, seed=args.seed)
    server.set_access(models=args.models.split(",") if args.models else None, api_key=args.api_key)

    async def _run() -> None:
        ready = threading.Event()
        task = asyncio.create_task(server.serve(ready))
        while not ready.is_set():
            await asyncio.sleep(0.01)
        print(server.base_url, flush=True)
        await task

    try:
        asyncio.run(_run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
