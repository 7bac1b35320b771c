"""``bench answer``: the openai backend against the local server, the hf backend with the tiny LLaVA, resume."""

from __future__ import annotations

import base64

import pytest

from keypoint_instruct.bench.layout import load_answers, load_bench
from keypoint_instruct.cli import main
from tests.bench.test_layout import make_bench, write_answers


def echo_responder(body: dict) -> str:
    """Answers with the question and the size of the image it received."""
    content = body["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
    question = next(p["text"] for p in content if p["type"] == "text")
    return f"{question} | {len(base64.b64decode(url.split(',', 1)[1]))} bytes"


def answer(tmp_path, *extra):
    return main(["bench", "answer", "--bench", str(tmp_path / "bench"), "--out", str(tmp_path / "a.jsonl"), *extra])


def test_openai_backend_sends_the_image_and_resumes(tmp_path, fake_openai, capsys):
    bench = load_bench(make_bench(tmp_path / "bench"))
    done_before = {q.question_id: "answered earlier" for q in bench.questions[:2]}
    write_answers(tmp_path / "a.jsonl", done_before, model="remote-vlm")  # an interrupted earlier run
    fake_openai.set_responder(echo_responder)
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url, "--batch-size", "3"]
    assert answer(tmp_path, *args) == 0
    assert "answered 4 question(s) now" in capsys.readouterr().out
    log = fake_openai.chat_log(ok_only=True)
    assert len(log) == 4
    body = log[0].body
    assert body["model"] == "remote-vlm" and body["temperature"] == 0
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    answers = load_answers(tmp_path / "a.jsonl", bench)
    assert len(answers) == 6 and all(a.model == "remote-vlm" for a in answers.values())
    for q in bench.questions[2:]:
        size = bench.image_path(q).stat().st_size
        assert answers[q.question_id].text == f"{q.text} | {size} bytes"
    assert answers[bench.questions[0].question_id].text == "answered earlier"
    # Everything answered: a rerun sends nothing.
    fake_openai.clear_log()
    assert answer(tmp_path, *args) == 0
    assert fake_openai.chat_log() == []


def test_answers_of_another_model_are_not_mixed(tmp_path, fake_openai, capsys):
    make_bench(tmp_path / "bench")
    write_answers(tmp_path / "a.jsonl", {"conversation-42": "x"}, model="other")
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url]
    assert answer(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'other'" in err and "Traceback" not in err


def test_openai_backend_without_key_or_url_is_one_line(tmp_path, capsys):
    make_bench(tmp_path / "bench")
    assert answer(tmp_path, "--model", "gpt-4o", "--backend", "openai") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OPENAI_API_KEY" in err


def test_hf_backend_tiny_llava_batched_equals_unbatched(tmp_path, tiny_llava_dir, capsys):
    make_bench(tmp_path / "bench")
    common = ["--model", str(tiny_llava_dir), "--backend", "hf", "--max-new-tokens", "6", "--name", "tiny"]
    assert answer(tmp_path, *common, "--batch-size", "6") == 0
    batched = load_answers(tmp_path / "a.jsonl")
    (tmp_path / "a.jsonl").rename(tmp_path / "batched.jsonl")
    assert answer(tmp_path, *common, "--batch-size", "1") == 0
    single = load_answers(tmp_path / "a.jsonl")
    assert len(batched) == 6 and {a.model for a in batched.values()} == {"tiny"}
    # left padding + attention mask: a question's greedy answer does not depend on its batch-mates
    assert {k: a.text for k, a in batched.items()} == {k: a.text for k, a in single.items()}
    assert all(a.backend == "hf" for a in batched.values())


@pytest.mark.parametrize("bad", ["not-a-model-dir"])
def test_hf_backend_unloadable_model_is_one_line(tmp_path, bad, capsys):
    make_bench(tmp_path / "bench")
    (tmp_path / bad).mkdir()
    assert answer(tmp_path, "--model", str(tmp_path / bad), "--backend", "hf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and bad in err


def test_openai_backend_keeps_the_answers_it_got_when_the_endpoint_fails(tmp_path, fake_openai, capsys):
    bench = load_bench(make_bench(tmp_path / "bench"))
    broken = bench.questions[1].text
    fake_openai.set_responder(echo_responder)
    fake_openai.set_faults(rule=lambda body: "non_json" if broken in str(body["messages"]) else None)
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url, "--batch-size", "3"]
    assert answer(tmp_path, *args) == 1  # a reply that is no answer: the endpoint failed, not the input
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bench.questions[1].question_id in err and "non-JSON body" in err
    kept = load_answers(tmp_path / "a.jsonl", bench)
    assert set(kept) == {bench.questions[0].question_id, bench.questions[2].question_id}  # its batch-mates
    fake_openai.set_faults()
    fake_openai.clear_log()
    assert answer(tmp_path, *args) == 0  # the rerun asks only what is missing
    assert len(fake_openai.chat_log()) == len(bench.questions) - 2


def test_resuming_into_answers_of_another_build_is_one_line(tmp_path, fake_openai, capsys):
    from tests.bench.test_layout import _reword_first_question

    make_bench(tmp_path / "bench")
    fake_openai.set_responder(echo_responder)
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url]
    assert answer(tmp_path, *args) == 0
    capsys.readouterr()
    _reword_first_question(tmp_path / "bench")  # `bench build --overwrite` with another teacher
    fake_openai.clear_log()
    assert answer(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another build of the benchmark" in err and "Traceback" not in err
    assert fake_openai.chat_log() == []


def test_a_line_cut_by_a_kill_is_answered_again(tmp_path, fake_openai, capsys, caplog):
    """kill -9 in the middle of writing a batch leaves half a line at the end; the rerun must still resume."""
    bench = load_bench(make_bench(tmp_path / "bench"))
    fake_openai.set_responder(echo_responder)
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url]
    assert answer(tmp_path, *args) == 0
    lines = (tmp_path / "a.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    fake_openai.clear_log()
    assert answer(tmp_path, *args) == 0
    assert "answered 3 question(s) now" in capsys.readouterr().out
    assert len(fake_openai.chat_log(ok_only=True)) == 3
    assert any("cut short" in r.getMessage() and "a.jsonl" in r.getMessage() for r in caplog.records)
    assert len(load_answers(tmp_path / "a.jsonl", bench)) == 6
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 6


def test_a_cut_line_in_the_middle_is_not_repaired(tmp_path, capsys):
    make_bench(tmp_path / "bench")
    write_answers(tmp_path / "a.jsonl", {"conversation-42": "x"}, model="remote-vlm")
    text = (tmp_path / "a.jsonl").read_text()
    (tmp_path / "a.jsonl").write_text(text[:20] + "\n" + text)
    assert answer(tmp_path, "--model", "remote-vlm", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1") == 2
    assert "a.jsonl:1: not JSON" in capsys.readouterr().err


def test_hf_prompts_start_with_one_bos_like_training_with_a_tokenizer_that_adds_bos(tmp_path, tiny_llava_dir):
    """llava-hf's Llama tokenizer adds <s> itself; LLaVA-1.5's template writes <s> too: prompts got <s><s>."""
    import shutil

    from PIL import Image
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoProcessor

    from keypoint_instruct.bench.answer import hf_inputs

    model = shutil.copytree(tiny_llava_dir, tmp_path / "bos")
    processor = AutoProcessor.from_pretrained(model)
    tokenizer = processor.tokenizer
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    assert tokenizer("hi")["input_ids"][0] == bos  # it adds BOS, as Llama's does
    questions = ["What is the person doing?", "Why is the skier leaning forward so much today?"]
    images = [Image.new("RGB", (56, 56), (1, 2, 3))] * 2
    inputs = hf_inputs(processor, questions, images)
    for row, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
        ids = row[mask.bool()].tolist()
        assert ids[0] == bos and ids.count(bos) == 1, ids[:4]
    # the stock llava-hf template writes no <s>: the tokenizer's own BOS is kept
    processor.chat_template = processor.chat_template.replace("{{- bos_token -}}", "")
    inputs = hf_inputs(processor, questions, images)
    for row, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
        ids = row[mask.bool()].tolist()
        assert ids[0] == bos and ids.count(bos) == 1, ids[:4]


def test_hf_backend_can_prompt_with_llava_15s_template(tmp_path, tiny_llava_dir, capsys):
    """The base llava-hf model ships a template without LLaVA-1.5's system line; --chat-template gives it the
    prompt the fine-tuned model was trained on (and answers a model saved without a template)."""
    import json
    import shutil

    from tests.paths import REPO

    make_bench(tmp_path / "bench")
    model = shutil.copytree(tiny_llava_dir, tmp_path / "bare")
    (model / "chat_template.jinja").unlink()
    for name in ("tokenizer_config.json", "processor_config.json"):
        config = json.loads((model / name).read_text())
        config.pop("chat_template", None)
        (model / name).write_text(json.dumps(config))
    common = ["--model", str(model), "--backend", "hf", "--max-new-tokens", "4", "--name", "bare"]
    assert answer(tmp_path, *common) == 2
    assert "has no chat template" in capsys.readouterr().err
    template = REPO / "recipes" / "chat_templates" / "llava-1.5.jinja"
    assert answer(tmp_path, *common, "--chat-template", str(template)) == 0
    assert len(load_answers(tmp_path / "a.jsonl")) == 6
    capsys.readouterr()
    assert answer(tmp_path, *common, "--chat-template", str(tmp_path / "nope.jinja")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.jinja" in err
    openai = ["--model", "m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    assert answer(tmp_path, *openai, "--chat-template", str(template)) == 2
    assert "--chat-template" in capsys.readouterr().err


def test_openai_backend_takes_a_reasoning_model_and_a_base_url_with_a_query(tmp_path, fake_openai, capsys):
    """The teacher's rules: a reasoning model gets max_completion_tokens and no temperature, and a --base-url query
    (Azure's api-version) is sent as a query, not glued into the path (a 404 on every question)."""
    bench = load_bench(make_bench(tmp_path / "bench"))
    fake_openai.set_responder(echo_responder)
    fake_openai.set_access(reasoning_models={"o4-mini"})
    url = fake_openai.base_url + "?api-version=2024-10-21"
    assert answer(tmp_path, "--model", "o4-mini", "--backend", "openai", "--base-url", url) == 0
    assert f"answered {len(bench.questions)} question(s) now" in capsys.readouterr().out
    entries = fake_openai.chat_log()
    assert len(entries) == len(bench.questions) and {e.status for e in entries} == {200}
    assert {(e.path, e.query) for e in entries} == {("/v1/chat/completions", "api-version=2024-10-21")}
    assert all(set(e.body) == {"model", "messages", "max_completion_tokens"} for e in entries)


def test_openai_backend_sends_an_azure_key_in_its_own_header():
    """Azure takes the key in api-key alone (a Bearer header as well is a 400): the request the SDK would send."""
    import openai

    from keypoint_instruct.bench.answer import openai_client

    url = "https://res.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-10-21"
    client, headers = openai_client(url, "k123")
    options = openai._models.FinalRequestOptions(method="post", url="/chat/completions", headers=headers)
    request = client._build_request(options)
    assert str(request.url) == url.replace("?", "/chat/completions?")
    assert request.headers["api-key"] == "k123" and "authorization" not in request.headers


def test_openai_backend_keeps_a_refusal_as_the_models_answer(tmp_path, fake_openai, capsys):
    """A refusal in the provider's refusal field (content null) is what the model answered: it is written (and judged
    low), not an empty answer."""
    bench = load_bench(make_bench(tmp_path / "bench"))
    fake_openai.set_responder(echo_responder)
    fake_openai.set_faults(script=["refusal"])
    args = ["--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url, "--batch-size", "1"]
    assert answer(tmp_path, *args) == 0
    answers = load_answers(tmp_path / "a.jsonl", bench)
    assert answers[bench.questions[0].question_id].text == "I'm sorry, but I can't help with that request."
    assert all(answers[q.question_id].text.startswith(q.text) for q in bench.questions[1:])


def test_an_endpoint_that_never_answers_stops_short_with_exit_1(tmp_path, capsys, monkeypatch):
    """As generate, bench build and bench judge: nothing listening is found only after retrying, and a server still
    starting looks the same, so it is exit 1 (run again), not bad input."""
    monkeypatch.setattr("keypoint_instruct.bench.answer.CLIENT_RETRIES", 1)  # the client's backoff, kept short
    make_bench(tmp_path / "bench")
    assert answer(tmp_path, "--model", "x", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "after 2 attempts" in err and "connection" in err and "run the same command again" in err
    assert "APIConnectionError" not in err


def test_an_endpoint_failing_every_request_stops_short_with_exit_1(tmp_path, fake_openai, capsys, monkeypatch):
    monkeypatch.setattr("keypoint_instruct.bench.answer.CLIENT_RETRIES", 1)
    make_bench(tmp_path / "bench")
    fake_openai.set_faults(rule=lambda body: "500")
    assert answer(tmp_path, "--model", "x", "--backend", "openai", "--base-url", fake_openai.base_url) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 500" in err and "after 2 attempts" in err, err


SECRET = "sk-wrong-key-for-the-test-1234"


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ({"api_key": "sk-the-right-one-0000"}, ("HTTP 401", "check OPENAI_API_KEY")),
        ({"models": {"served-vlm"}}, ("HTTP 404", "'remote-vlm'", "check --model")),
    ],
    ids=["wrong-key", "unknown-model"],
)
def test_a_refused_key_or_model_is_exit_2_with_a_readable_line(
    tmp_path, fake_openai, capsys, monkeypatch, access, expected
):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    make_bench(tmp_path / "bench")
    fake_openai.set_access(**access)
    assert answer(tmp_path, "--model", "remote-vlm", "--backend", "openai", "--base-url", fake_openai.base_url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(part in err for part in expected), err
    assert "Error code:" not in err and "AuthenticationError" not in err and SECRET[-6:] not in err
    assert len(fake_openai.chat_log()) <= 8  # one batch at most: the client does not retry a refusal


def _no_hub(*args, **kwargs):
    raise AssertionError("the Hub was asked")


@pytest.mark.parametrize("model", ["./no-such-run", "{tmp}/no-such-run", "runs/2024/no-such-run", "~/no-such-run"])
def test_hf_backend_a_model_path_that_does_not_exist_is_one_line_at_once(tmp_path, capsys, monkeypatch, model):
    """A name that cannot be a Hub id is a folder that does not exist: said at once, the Hub never asked."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", _no_hub)
    make_bench(tmp_path / "bench")
    model = model.format(tmp=tmp_path)
    assert answer(tmp_path, "--model", model, "--backend", "hf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--model {model}: no such folder" in err, err


def test_hf_backend_a_hub_id_that_is_no_folder_is_looked_up_once_without_retries(tmp_path, capsys, monkeypatch):
    """An offline machine: one lookup that fails says the folder does not exist, where it was looked up and what
    HF_HUB_OFFLINE does; with HF_HUB_OFFLINE=1 the Hub is not asked at all (it used to retry for minutes)."""
    import huggingface_hub

    asked = []

    def unreachable(url, *args, **kwargs):
        asked.append(url)
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    make_bench(tmp_path / "bench")
    assert answer(tmp_path, "--model", "nonexist-folder", "--backend", "hf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "no such folder here" in err and "Hub" in err and "HF_HUB_OFFLINE=1" in err and "Name or service" in err
    assert len(asked) == 1 and "nonexist-folder" in asked[0]
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", _no_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert answer(tmp_path, "--model", "nonexist-folder", "--backend", "hf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder here" in err and "HF_HUB_OFFLINE is set" in err, err
