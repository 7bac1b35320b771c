"""The spend cap: `generate --max-cost` and `batch submit --max-cost` against the fake OpenAI server."""

from __future__ import annotations

import json
import re

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.llm.online.budget import Budget, worst_case_tokens, worst_case_usd
from keypoint_instruct.llm.request import GenerationSettings, request_key
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.teacher.requests import build_requests
from keypoint_instruct.vocab import TASKS

SPLIT = "val2014"


def selected(coco_root, limit: int, model: str = "gpt-4o-2024-08-06"):
    scenes = select_scenes(load_scenes(coco_root, SPLIT).values(), limit=limit)
    settings = GenerationSettings(model=model)
    return [r for task in TASKS for r in build_requests(scenes, task, settings, "paper", SPLIT)]


def selection(coco_root, cache, limit: int = 8) -> list[str]:
    return [
        "--task",
        "all",
        "--coco-root",
        str(coco_root),
        "--split",
        SPLIT,
        "--cache",
        str(cache),
        "--limit",
        str(limit),
    ]


def one_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "DEBUG "))]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_the_cap_stops_the_run_and_a_rerun_finishes_without_resending(fake_openai, coco_root, tmp_path, capsys):
    requests = selected(coco_root, 8)
    worst = [worst_case_usd(r) for r in requests]
    cap = round(0.25 * sum(worst), 4)  # room for a few requests in flight, not for all 24
    cache_path = tmp_path / "capped.sqlite"
    argv = ["generate", *selection(coco_root, cache_path), "--base-url", fake_openai.base_url, "--no-progress"]
    code = main([*argv, "--concurrency", "4", "--max-cost", str(cap)])
    out, err = capsys.readouterr()
    assert code == 1, err
    left = int(re.search(r"stopped at the cost cap with (\d+) requests left", out)[1])
    answered = int(re.search(r"(\d+) answered", out)[1])
    assert 0 < answered < 24 and left == 24 - answered
    with ResponseCache(cache_path) as cache:
        spent = cache.stats().cost_usd
        assert cache.stats().responses == answered
    assert 0 < spent <= cap
    assert (
        f"stopped at the --max-cost cap of ${cap:g}: ${spent:.4f} spent in this run, and the next request's worst"
        f" case (its prompt plus its whole output limit) would not fit under the cap; {left} requests left" in err
    )
    assert "rerun with a higher --max-cost (or none)" in err
    assert len(fake_openai.chat_log()) == answered  # every request sent was answered and saved

    assert main(argv) == 0
    assert f"24 requests: {answered} already cached, 0 waiting in a batch, {left} answered" in capsys.readouterr().out
    sent = [request_key(e.body) for e in fake_openai.chat_log()]
    assert len(sent) == len(set(sent)) == 24  # nothing paid twice over the two runs


@pytest.mark.parametrize("progress", [True, False])
def test_a_cap_below_one_request_is_a_usage_error(fake_openai, coco_root, tmp_path, capsys, progress):
    """A cap that cannot pay for even one request: exit 2 and one line, as `batch submit` does; nothing sent."""
    requests = selected(coco_root, 2)
    cache_path = tmp_path / "c.sqlite"
    with ResponseCache(cache_path, create=True) as cache:  # the first request is answered: the next one counts
        cache.db.execute(
            "INSERT INTO responses VALUES (?, ?, ?, ?, 'gpt-4o-2024-08-06', ?, 'kept', 'stop', 1, 1, 0, 0, 0, 'x')",
            (requests[0].key, requests[0].task, requests[0].item_id, SPLIT, requests[0].prompt_version),
        )
    first = worst_case_usd(requests[1])
    cap = min(worst_case_usd(r) for r in requests) * 0.9
    argv = ["generate", *selection(coco_root, cache_path, 2), "--base-url", fake_openai.base_url]
    line = one_line(capsys, main([*argv, *([] if progress else ["--no-progress"]), "--max-cost", str(cap)]))
    assert f"--max-cost ${cap:g} is below the worst case of the first request to send (${first:.4f}" in line
    assert "nothing sent" in line and "was reached" not in line
    assert fake_openai.chat_log() == []
    with ResponseCache(cache_path) as cache:
        assert cache.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_batch_submit_and_generate_refuse_a_cap_below_one_request_alike(fake_openai, coco_root, tmp_path, capsys):
    cap = min(worst_case_usd(r, batch=True) for r in selected(coco_root, 2)) * 0.9
    codes, lines = [], []
    for command in ("generate", "batch submit"):
        argv = [*command.split(), *selection(coco_root, tmp_path / f"{command[0]}.sqlite", 2)]
        code = main([*argv, "--base-url", fake_openai.base_url, "--max-cost", str(cap)])
        codes.append(code)
        lines.append(one_line(capsys, code))
    assert codes == [2, 2]
    assert all(f"--max-cost ${cap:g} is below the worst case of the first request to " in x for x in lines), lines
    assert "nothing sent" in lines[0] and "nothing submitted" in lines[1]
    assert fake_openai.log() == []


@pytest.mark.parametrize("command", ["generate", "batch submit"])
def test_a_model_without_a_price_cannot_be_capped(fake_openai, coco_root, tmp_path, capsys, command):
    argv = [*command.split(), *selection(coco_root, tmp_path / "c.sqlite", 2), "--base-url", fake_openai.base_url]
    line = one_line(capsys, main([*argv, "--model", "my-local-llama", "--max-cost", "5"]))
    assert "--max-cost cannot be enforced: no price for model my-local-llama in pricing.json" in line
    assert not (tmp_path / "c.sqlite").exists() and fake_openai.log() == []


def test_batch_submit_takes_what_fits_and_leaves_the_rest(fake_openai, coco_root, tmp_path, capsys):
    requests = selected(coco_root, 4)
    worst = [worst_case_usd(r, batch=True) for r in requests]
    assert worst[0] < worst_case_usd(requests[0])  # the Batch price, not the sync one
    cap = sum(worst[:5]) + worst[5] / 2
    cache_path = tmp_path / "b.sqlite"
    argv = ["batch", "submit", *selection(coco_root, cache_path, 4), "--base-url", fake_openai.base_url]
    argv += ["--out-dir", str(tmp_path / "files")]
    assert main([*argv, "--max-cost", str(cap)]) == 1
    out = capsys.readouterr().out
    assert "submitted 5 requests in 1 batch" in out and "7 requests left out by --max-cost" in out
    assert f"worst case of what was submitted ${sum(worst[:5]):.4f} at the Batch price" in out
    [first] = sorted((tmp_path / "files").iterdir())
    assert [json.loads(x)["custom_id"] for x in first.read_text().splitlines()] == [r.key for r in requests[:5]]
    assert main(argv) == 0  # no cap: the rest goes in a second batch
    assert "submitted 7 requests in 1 batch" in capsys.readouterr().out

    line = one_line(capsys, main([*argv[:-2], "--out-dir", str(tmp_path / "g"), "--limit", "5", "--max-cost", "1e-6"]))
    assert "below the worst case of the first request to submit" in line and "nothing submitted" in line


def test_budget_keeps_what_an_abandoned_attempt_may_cost(coco_root):
    request = selected(coco_root, 1)[0]
    worst = worst_case_usd(request)
    budget = Budget(cap_usd=worst * 2.5)
    assert budget.reserve(1, request, spent=0.0) and budget.reserve(2, request, spent=0.0)
    assert not budget.reserve(3, request, spent=0.0)  # a third worst case would pass the cap
    budget.failed(1, answered_with_error=True)  # an HTTP error: not billed, its reservation goes
    assert budget.reserve(3, request, spent=0.0)
    budget.failed(3, answered_with_error=False)  # a timeout: the provider may bill it
    assert not budget.reserve(4, request, spent=0.0)
    budget.answered(2, prompt_tokens=1)
    assert budget.reserved == 0 and budget.possibly_billed == pytest.approx(worst)
    assert budget.reserve(5, request, spent=worst * 0.5) and not budget.reserve(6, request, spent=worst * 0.5)


def test_an_endpoint_counting_more_prompt_tokens_makes_later_reservations_larger(coco_root):
    request = selected(coco_root, 1)[0]
    worst = worst_case_usd(request)
    budget = Budget(cap_usd=worst * 1.05)  # one worst case fits, at the o200k count
    assert budget.reserve(1, request, spent=0.0)
    counted = budget._held[1][1]
    budget.answered(1, prompt_tokens=counted * 3)  # the endpoint billed three times the o200k count
    assert budget.prompt_scale == pytest.approx(3.0)
    assert not budget.reserve(2, request, spent=0.0)  # a worst case with 3x the prompt no longer fits


def test_the_cap_message_counts_what_abandoned_attempts_may_have_cost(fake_openai, coco_root, tmp_path, capsys):
    requests = selected(coco_root, 2)
    worst = worst_case_usd(requests[0])
    fake_openai.set_faults(script=["non_json", "drop"])  # two attempts with no usable answer: maybe billed
    argv = ["generate", *selection(coco_root, tmp_path / "c.sqlite", 2), "--base-url", fake_openai.base_url]
    code = main([*argv, "--no-progress", "--concurrency", "1", "--max-cost", str(worst * 3.5)])
    out, err = capsys.readouterr()
    assert code == 1, err
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        spent = cache.stats().cost_usd
    possibly = re.search(r"plus up to \$([\d.]+) for 2 attempts abandoned without an answer", err)
    assert possibly, err
    assert float(possibly[1]) == pytest.approx(sum(worst_case_usd(r) for r in requests[:2]), abs=1e-4)
    assert spent + float(possibly[1]) <= worst * 3.5


def test_a_reasoning_model_is_capped_by_its_max_completion_tokens(fake_openai, coco_root, tmp_path, capsys):
    """o4-mini takes max_completion_tokens, not max_tokens (its hidden reasoning comes out of the same limit): the cap
    reads the output limit under either name and counts all of it, for generate and batch submit alike."""
    model = "o4-mini"
    fake_openai.set_access(reasoning_models={model})
    requests = selected(coco_root, 2, model=model)
    assert "max_tokens" not in requests[0].body
    assert worst_case_tokens(requests[0])[1] == GenerationSettings(model=model).reasoning_max_tokens
    worst = [worst_case_usd(r) for r in requests]
    argv = [*selection(coco_root, tmp_path / "c.sqlite", 2), "--base-url", fake_openai.base_url, "--model", model]
    line = one_line(capsys, main(["generate", *argv, "--no-progress", "--max-cost", str(min(worst) * 0.9)]))
    assert f"is below the worst case of the first request to send (${worst[0]:.4f}" in line
    assert "plus its output limit" in line  # max_completion_tokens here: not "max_tokens", which it has none of
    assert fake_openai.log() == []
    # room for the worst case of one request in flight: one at a time, every request is sent, under the cap
    cap = max(worst) * 1.5
    assert main(["generate", *argv, "--no-progress", "--concurrency", "1", "--max-cost", str(cap)]) == 0
    assert "6 answered" in capsys.readouterr().out
    assert [e.status for e in fake_openai.chat_log()] == [200] * 6
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert 0 < cache.stats().cost_usd < cap
    batch_worst = [worst_case_usd(r, batch=True) for r in requests]
    argv = ["batch", "submit", *selection(coco_root, tmp_path / "b.sqlite", 2), "--base-url", fake_openai.base_url]
    argv += ["--model", model, "--out-dir", str(tmp_path / "files")]
    assert main([*argv, "--max-cost", str(sum(batch_worst[:4]) + batch_worst[4] / 2)]) == 1
    assert "submitted 4 requests in 1 batch" in capsys.readouterr().out


def test_a_high_concurrency_run_spends_up_to_the_cap_like_a_serial_one(fake_openai, coco_root, tmp_path, capsys):
    """A request that does not fit beside the worst cases in flight waits for them (their real cost replaces the
    worst case) instead of stopping the run: 32 at a time reach about the spend of one at a time, both under the
    cap."""
    requests = selected(coco_root, 18)  # 54 requests
    worst = [worst_case_usd(r) for r in requests]
    cap = round(0.15 * sum(worst), 4)  # room for many more answers than worst cases, not for all 54
    spent = {}
    for concurrency in (1, 32):
        cache_path = tmp_path / f"c{concurrency}.sqlite"
        argv = ["generate", *selection(coco_root, cache_path, 18), "--base-url", fake_openai.base_url]
        code = main([*argv, "--no-progress", "--concurrency", str(concurrency), "--max-cost", str(cap)])
        out, err = capsys.readouterr()
        with ResponseCache(cache_path) as cache:
            spent[concurrency] = cache.stats().cost_usd
        assert spent[concurrency] <= cap
        if code == 1:  # stopped at the cap: only when the next request could not fit with nothing in flight
            assert "stopped at the cost cap" in out, err
            assert spent[concurrency] + max(worst) > cap
        else:
            assert code == 0 and "54 answered" in out, err
    assert spent[1] + max(worst) > cap  # the cap bit
    assert spent[32] >= 0.5 * spent[1], spent
