"""Pricing table, o200k token counts and the dry-run estimate, checked against counts done by hand."""

from __future__ import annotations

import builtins
import logging
import re

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import format_context, select_scenes
from keypoint_instruct.llm import pricing
from keypoint_instruct.llm.pricing import (
    TokenCounter,
    cacheable_tokens,
    completion_cost,
    count_message_tokens,
    estimate_request,
    estimate_requests,
    format_estimate,
    price_for,
)
from keypoint_instruct.llm.request import ChatRequest, GenerationSettings
from keypoint_instruct.teacher.templates import load_prompt


def test_pinned_gpt4o_prices_and_date():
    price = price_for("gpt-4o-2024-08-06")
    assert (price.input, price.cached_input, price.output, price.batch_discount) == (2.50, 1.25, 10.00, 0.5)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", pricing.prices_read_on())
    assert price_for("gpt-4o-mini").output == 0.60
    assert price_for("gpt-4o-2099-01-01").model == "gpt-4o"  # an unknown snapshot falls back to its alias
    assert price_for("llama-3-70b") is None and price_for("offline-posefacts").input == 0.0


def test_a_snapshot_priced_apart_from_its_alias():
    # gpt-4o-2024-05-13 kept GPT-4o's launch price and has no cached-input discount: not the alias's $2.50/$10
    price = price_for("gpt-4o-2024-05-13")
    assert (price.input, price.cached_input, price.output, price.batch_discount) == (5.00, 5.00, 15.00, 0.5)


def test_reasoning_model_requests_count_their_output_limit():
    settings = GenerationSettings(model="gpt-5")
    messages = [{"role": "user", "content": "A man skis."}]
    request = ChatRequest("conversation", 1, "val2014", "v1", settings.body(messages))
    estimate = estimate_requests([request])
    assert estimate.max_output_tokens == settings.reasoning_max_tokens and estimate.output_tokens > 0
    # their hidden reasoning is billed as output but is not in the few-shot answers the estimate measures
    assert estimate.reasoning_models == ["gpt-5"] and "gpt-5 also bills hidden reasoning tokens" in format_estimate(
        estimate
    )
    assert "max_completion_tokens for a reasoning model" in format_estimate(estimate)
    chat = estimate_requests([_request(messages)])
    assert chat.reasoning_models == [] and "reasoning tokens" not in format_estimate(chat)


def test_completion_cost_by_hand():
    # 800 uncached input at $2.50, 200 cached at $1.25, 500 output at $10.00, per 1M tokens
    got = completion_cost("gpt-4o-2024-08-06", prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    assert got == pytest.approx((800 * 2.50 + 200 * 1.25 + 500 * 10.00) / 1_000_000)
    batch = completion_cost("gpt-4o-2024-08-06", prompt_tokens=1000, completion_tokens=500, batch=True)
    assert batch == pytest.approx((1000 * 2.50 + 500 * 10.00) / 1_000_000 / 2)


def test_unknown_model_costs_zero_and_warns_once(caplog):
    pricing._warned.discard("my-local-model")
    with caplog.at_level(logging.WARNING, logger="keypoint_instruct.llm.pricing"):
        assert completion_cost("my-local-model", prompt_tokens=10, completion_tokens=10) == 0.0
        assert completion_cost("my-local-model", prompt_tokens=99, completion_tokens=1) == 0.0
    assert sum("my-local-model" in r.getMessage() for r in caplog.records) == 1


def test_o200k_counts_offline_by_hand():
    counter = TokenCounter()
    assert counter.exact and "o200k" in counter.method
    assert counter._encoding.encode("hello world") == [24912, 2375]  # "hello", " world" in o200k_base
    assert counter.count("user") == 1 and counter.count("system") == 1
    # one message: 3 framing + 1 ("user") + 2 ("hello world"), then 3 for the reply priming
    assert count_message_tokens([{"role": "user", "content": "hello world"}]) == 3 + 1 + 2 + 3
    named = [{"role": "user", "content": "hello world", "name": "user"}]
    assert count_message_tokens(named) == 3 + 1 + 2 + 1 + 1 + 3


def test_fallback_estimate_when_quicktok_cannot_load(monkeypatch):
    real_import = builtins.__import__

    def no_quicktok(name, *args, **kwargs):
        if name == "quicktok":
            raise ImportError("no quicktok here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_quicktok)
    counter = TokenCounter()
    assert not counter.exact and counter.method.startswith("estimate")
    assert counter.count("abcdefghi") == 3  # ceil(9 / 4)


def test_cacheable_tokens_steps():
    assert [cacheable_tokens(n) for n in (0, 1023, 1024, 1151, 1152, 2500)] == [0, 0, 1024, 1024, 1152, 2432]


def _request(messages, task="judge/conversation", max_tokens=100, model="gpt-4o-2024-08-06") -> ChatRequest:
    body = GenerationSettings(model=model, max_tokens=max_tokens).body(messages)
    return ChatRequest(task=task, item_id=1, collection="val2014", prompt_version="v", body=body)


def test_estimate_of_a_small_fixed_input_by_hand():
    messages = [{"role": "system", "content": "hello world"}, {"role": "user", "content": "hello world"}]
    one = estimate_request(messages, max_tokens=100, expected_output_tokens=500)
    assert one.input_tokens == (3 + 1 + 2) * 2 + 3 and one.prefix_tokens == 3 + 1 + 2
    assert one.output_tokens == 100  # capped at max_tokens
    assert estimate_request(messages, max_tokens=1000).output_tokens == 300  # the default expectation

    # judge tasks have no few-shot answers: 300 expected, capped at max_tokens = 100
    estimate = estimate_requests([_request(messages)] * 3)
    assert (estimate.requests, estimate.input_tokens, estimate.output_tokens) == (3, 45, 300)
    assert estimate.max_output_tokens == 300 and estimate.cacheable_input_tokens == 0  # a 6-token prefix
    assert estimate.sync_usd == pytest.approx(3 * (15 * 2.50 + 100 * 10.00) / 1e6)
    assert estimate.sync_cached_usd == pytest.approx(estimate.sync_usd)
    assert estimate.batch_usd == pytest.approx(estimate.sync_usd / 2)
    text = format_estimate(estimate)
    assert "estimated input tokens: 45 " in text and "estimated output tokens: 300 " in text
    assert f"${estimate.sync_usd:,.2f}" in text and "o200k" in text and pricing.prices_read_on() in text


def test_estimate_counts_repeated_static_prefix_as_cacheable():
    template = load_prompt("conversation")
    requests = [_request(template.messages(f"context {i}"), task="conversation", max_tokens=2048) for i in range(4)]
    estimate = estimate_requests(requests)
    prefix = count_message_tokens(template.messages("x")[:-1], reply=False)
    assert prefix > 1024 and estimate.cacheable_input_tokens == 3 * cacheable_tokens(prefix)
    answers = [pricing.token_counter().count(response) for _, response in template.examples]
    assert estimate.output_tokens == 4 * round(sum(answers) / len(answers))
    assert estimate.sync_cached_usd < estimate.sync_usd and estimate.batch_usd == pytest.approx(estimate.sync_usd / 2)


def test_unpriced_model_is_named_in_the_report():
    estimate = estimate_requests([_request([{"role": "user", "content": "x"}], model="local-llm")])
    assert estimate.unpriced_models == ["local-llm"] and estimate.sync_usd == 0.0
    assert "no price known for local-llm" in format_estimate(estimate)


def test_cli_dry_run_prints_the_estimate_of_the_requests(coco_root, tmp_path, capsys):
    code = main(["generate", "--task", "complex_reasoning", "--coco-root", str(coco_root), "--split", "train2017",
                 "--cache", str(tmp_path / "c.db"), "--limit", "3", "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    template = load_prompt("complex_reasoning")
    scenes = select_scenes(load_scenes(coco_root, "train2017").values(), limit=3)
    tokens = sum(count_message_tokens(template.messages(format_context(s))) for s in scenes)
    assert f"estimated input tokens: {tokens:,} " in out
