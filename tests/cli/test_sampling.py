"""The teacher's sampling flags on generate, batch submit and bench build: they reach the request body at the server,
they are stored with every answer, and a flag the model does not take is one line, exit 2, nothing sent."""

from __future__ import annotations

import json

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.llm.request import GenerationSettings
from keypoint_instruct.llm.store.cache import ResponseCache

SPLIT = "val2014"
FLAGS = ["--temperature", "0.7", "--top-p", "0.9", "--max-tokens", "2048", "--seed", "7"]
ASKED = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 2048, "seed": 7}


def selection(coco_root, cache, *extra, task="conversation", limit="2"):
    return ["--task", task, "--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--limit", limit,
            *extra]  # fmt: skip


def sampling(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("model", "messages")}


def test_the_defaults_are_the_bodies_every_cache_so_far_was_keyed_on():
    """Changing a default would change every key and strand every stored answer: they stay as they were."""
    body = GenerationSettings().body([{"role": "user", "content": "x"}])
    assert sampling(body) == {"temperature": 0.2, "max_tokens": 1024, "seed": 42}


def test_generate_sends_the_flags_and_stores_them_with_each_answer(fake_openai, coco_root, tmp_path, capsys):
    cache = tmp_path / "c.sqlite"
    assert main(["generate", *selection(coco_root, cache), *FLAGS, "--base-url", fake_openai.base_url,
                 "--no-progress"]) == 0  # fmt: skip
    bodies = [entry.body for entry in fake_openai.chat_log(ok_only=True)]
    assert len(bodies) == 2 and all(sampling(body) == ASKED for body in bodies)
    with ResponseCache(cache) as opened:
        assert [r.sampling for r in opened.iter_responses()] == [ASKED, ASKED]
    capsys.readouterr()
    assert main(["cache", "stats", "--cache", str(cache)]) == 0
    assert "temperature 0.7, top_p 0.9, max_tokens 2048, seed 7: 2" in capsys.readouterr().out

    fake_openai.clear_log()  # other settings are other requests: asked again, the first answers kept
    assert main(["generate", *selection(coco_root, cache), "--seed", "none", "--base-url", fake_openai.base_url,
                 "--no-progress"]) == 0  # fmt: skip
    bodies = [entry.body for entry in fake_openai.chat_log(ok_only=True)]
    assert len(bodies) == 2 and all(sampling(b) == {"temperature": 0.2, "max_tokens": 1024} for b in bodies)
    with ResponseCache(cache) as opened:
        assert opened.stats().responses == 4


def test_batch_submit_puts_the_flags_in_the_batch_file(fake_openai, coco_root, tmp_path, capsys):
    cache = tmp_path / "c.sqlite"
    url = ["--base-url", fake_openai.base_url]
    assert main(["batch", "submit", *selection(coco_root, cache), *FLAGS, *url]) == 0
    fake_openai.complete_batches()
    assert main(["batch", "collect", "--cache", str(cache), *url]) == 0
    uploads = [e.body for e in fake_openai.log() if e.path == "/v1/files" and e.method == "POST"]
    assert len(uploads) == 1
    with ResponseCache(cache) as opened:  # read back from the input file the server holds
        assert [r.sampling for r in opened.iter_responses()] == [ASKED, ASKED]


def test_bench_build_sends_the_flags_and_records_them(fake_openai, coco_root, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "build", "--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(tmp_path / "t.sqlite")]
    argv += ["--out", str(out), "--images", "2", "--base-url", fake_openai.base_url]
    teacher = ["--temperature", "0.7", "--top-p", "0.9", "--max-tokens", "2048", "--teacher-seed", "7"]
    assert main([*argv, *teacher]) == 0
    bodies = [entry.body for entry in fake_openai.chat_log(ok_only=True)]
    assert len(bodies) == 6 and all(sampling(body) == ASKED for body in bodies)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sampling"] == ASKED and meta["seed"] == 0  # --seed stays the draw's seed
    assert main([*argv, "--seed", "0"]) == 2  # other settings: another benchmark, refused over this one
    assert "sampling" in capsys.readouterr().err


def test_a_reasoning_model_takes_max_completion_tokens_only(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_access(reasoning_models=["o4-mini"])
    cache = tmp_path / "c.sqlite"
    base = ["generate", *selection(coco_root, cache, limit="1"), "--model", "o4-mini", "--base-url"]
    base += [fake_openai.base_url, "--no-progress"]
    assert main([*base, "--max-completion-tokens", "4000"]) == 0
    [entry] = fake_openai.chat_log(ok_only=True)
    assert sampling(entry.body) == {"max_completion_tokens": 4000, "seed": 42}
    fake_openai.clear_log()
    for flags, said in (
        (["--temperature", "0.5"], "takes no --temperature"),
        (["--max-tokens", "100"], "use --max-completion-tokens"),
        (["--top-p", "0.5"], "takes no --top-p"),
    ):
        capsys.readouterr()
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
    assert main(["generate", *selection(coco_root, cache), "--max-completion-tokens", "9", "--base-url",
                 fake_openai.base_url]) == 2  # fmt: skip
    assert "takes --max-tokens" in capsys.readouterr().err
    assert fake_openai.chat_log() == []


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--temperature", "2.5"), ("--temperature", "nan"), ("--top-p", "0"), ("--max-tokens", "0"), ("--seed", "x")],
)
def test_an_out_of_range_value_is_argparses_one_line(coco_root, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        main(["generate", *selection(coco_root, tmp_path / "c.sqlite"), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1
