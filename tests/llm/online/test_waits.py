"""Every wait of a run writes one debug line with its reason, so a slow run can be explained from its log."""

from __future__ import annotations

import asyncio
import logging
import re

from keypoint_instruct.llm.online.engine import EngineSettings, run
from keypoint_instruct.llm.online.ratelimit import estimate_request_tokens
from keypoint_instruct.llm.online.waits import Why, wait
from keypoint_instruct.llm.providers.openai import OpenAIChat
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.llm.providers.test_openai import chat_request

LOGGER = "keypoint_instruct.llm.online.waits"


def test_a_timed_wait_and_a_wait_for_an_event_each_say_why(caplog):
    async def go():
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        await wait(Why.BACKOFF, 0.01)
        await wait(Why.SPEND_CAP, until=done)

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        asyncio.run(go())
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "waiting 0.01 s for backoff before a retry",
        "waiting for room under the spend cap",
    ]


def test_a_run_logs_why_it_waited_retry_after_backoff_tpm_and_the_first_answer(fake_openai, tmp_path, caplog):
    fake_openai.set_faults(script=["429", "500"], retry_after_s=0.05)  # the first two requests to arrive
    requests = [chat_request(i) for i in range(4)]
    per_request = estimate_request_tokens(requests[0])
    # One second of allowance holds one and a half requests: the next ones wait for the TPM bucket.
    settings = EngineSettings(concurrency=4, tpm=per_request * 90, progress=False, backoff_base_s=0.05)
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache, caplog.at_level(logging.DEBUG, logger=LOGGER):
        summary = run(OpenAIChat(base_url=fake_openai.base_url), requests, cache, settings)
    assert summary.answered == 4
    reasons = {re.sub(r"^waiting (\d+\.\d+ s )?for ", "", r.getMessage()) for r in caplog.records if r.name == LOGGER}
    assert {Why.FIRST_ANSWER.value, Why.RETRY_AFTER.value, Why.BACKOFF.value, Why.TPM.value} <= reasons, reasons
