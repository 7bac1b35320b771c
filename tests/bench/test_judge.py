"""``bench judge`` against the local OpenAI-compatible server with scripted replies, and the offline-overlap judge."""

from __future__ import annotations

import json
import re

import pytest

from keypoint_instruct.bench.judge import (
    JUDGE_SEED,
    judge_messages,
    load_rubrics,
    parse_scores,
    read_result,
    retry_messages,
)
from keypoint_instruct.bench.overlap import OVERLAP_LABEL, token_f1
from keypoint_instruct.bench.report import ALL, build_report
from keypoint_instruct.cli import main
from keypoint_instruct.vocab import JUDGE_MODEL, TASKS
from tests.bench.test_layout import make_bench, reference_text, write_answers
from tests.paths import SNAPSHOTS as ALL_SNAPSHOTS
from tests.snapshot_check import check_snapshot

# The model's answer decides the scripted judge reply: (first reply, reply to the retry nudge).
SCRIPT = {
    "conversation-42": ("good", "8 6\nBoth are fine.", None),
    "detailed_description-42": ("so-so", "7 3\nAssistant 2 misses the knees.", None),
    "complex_reasoning-42": ("unclear-once", "Assistant 1 is better.", "9 5\nNow in the format."),
    "conversation-73": ("unclear-always", "I cannot grade this.", "Still no scores, sorry."),
    "detailed_description-73": ("fine", "8, 4\nComma-separated still reads.", None),
    "complex_reasoning-73": ("better", "6 7\nAssistant 2 reasons well.", None),
}
_ANSWER = re.compile(r"\[Assistant 2\]\n(.*?)\n\n\[End of Assistant 2\]", re.DOTALL)


def scripted_judge(body: dict) -> str:
    user = body["messages"][1]["content"]
    answer = _ANSWER.search(user).group(1)
    qid = next(q for q, (text, _, _) in SCRIPT.items() if text == answer)
    retry = body["messages"][-1]["content"] == load_rubrics().retry
    return SCRIPT[qid][2] if retry else SCRIPT[qid][1]


def judge(tmp_path, server, answers="answers.jsonl", out="result.json", *extra):
    return main(
        [
            "bench", "judge", "--bench", str(tmp_path / "bench"), "--answers", str(tmp_path / answers),
            "--cache", str(tmp_path / "judge.sqlite"), "--base-url", server.base_url, "--out", str(tmp_path / out),
            *extra,
        ]
    )  # fmt: skip


@pytest.fixture
def bench_and_answers(tmp_path):
    make_bench(tmp_path / "bench")
    write_answers(tmp_path / "answers.jsonl", {qid: text for qid, (text, _, _) in SCRIPT.items()})
    return tmp_path


@pytest.mark.parametrize(
    ("reply", "scores"),
    [
        ("8 6\nbecause", (8.0, 6.0)),
        ("\n 7.5, 9 \nx", (7.5, 9.0)),
        ("**8** **7**", (8.0, 7.0)),
        ("8, 7\nAssistant 1 names both knees; Assistant 2 misses one.", (8.0, 7.0)),
        ("8 7.", (8.0, 7.0)),
        ("Assistant 1: 8\nAssistant 2: 7\n\nAssistant 1 is more precise.", (8.0, 7.0)),
        ("Assistant 1: 8, Assistant 2: 7", (8.0, 7.0)),
        ("**Assistant 1:** 9 **Assistant 2:** 4", (9.0, 4.0)),
        ("8/10 and 7/10", (8.0, 7.0)),
        ("Assistant 1: 8/10, Assistant 2: 10/10", (8.0, 10.0)),
        ("Assistant 1 scores 8 out of 10 and Assistant 2 scores 7 out of 10.", (8.0, 7.0)),
        ("On a scale of 1-10: 6 3", (6.0, 3.0)),
        ("Scores: 9 6", (9.0, 6.0)),
    ],
)
def test_parse_scores_reads_gpt4o_style_first_lines(reply, scores):
    assert parse_scores(reply) == scores


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "good good",
        "Assistant 1 is better.",
        "I'm sorry, I cannot compare these answers.",
        "8\n7",  # two bare numbers on two lines: not the asked layout
        "Assistant 1: 8\nThe second answer is weaker.",
        "Assistant 2: 7, Assistant 1: 8",  # labels out of order: never swap silently
        "Assistant 2: 7\nAssistant 1: 8",
        "Assistant 1 gets 3 points for 2 errors",  # a sentence about one assistant
        "Here are my grades:\n8 7",
        "8 6 5",
        "0 5",
        "11 3",
        "8 -1",
    ],
)
def test_parse_scores_refuses_to_guess(reply):
    assert parse_scores(reply) is None


def test_scripted_judge_scores_excludes_and_caches(bench_and_answers, fake_openai, capsys):
    tmp_path = bench_and_answers
    fake_openai.set_responder(scripted_judge)
    assert judge(tmp_path, fake_openai) == 0
    assert "judged 5, excluded 1" in capsys.readouterr().out
    bodies = [e.body for e in fake_openai.chat_log(ok_only=True)]
    assert len(bodies) == 6 + 2  # two unreadable first replies asked again once each
    first = next(b for b in bodies if "(complex_reasoning, 42)" in b["messages"][1]["content"])
    assert (first["model"], first["temperature"], first["seed"]) == (JUDGE_MODEL, 0.0, JUDGE_SEED)
    user = first["messages"][1]["content"]
    assert user.index(reference_text("complex_reasoning", 42)) < user.index("unclear-once")
    assert load_rubrics().by_category["complex_reasoning"] in user and "person: [0.1, 0.2, 0.5, 0.9] #42" in user

    result = read_result(tmp_path / "result.json")
    by_id = {j.question_id: j for j in result.judgements}
    assert by_id["conversation-73"].status == "excluded" and by_id["conversation-73"].model_score is None
    assert by_id["conversation-73"].attempts == 2 and len(set(by_id["conversation-73"].judge_keys)) == 2
    assert by_id["conversation-73"].reason == "unparseable" and by_id["complex_reasoning-42"].reason == ""
    assert (by_id["complex_reasoning-42"].reference_score, by_id["complex_reasoning-42"].model_score) == (9, 5)
    assert result.counts()["conversation"] == {"judged": 1, "excluded": 1, "unanswered": 0}
    scores = build_report([result], resamples=200)[0]
    assert scores.score == pytest.approx(
        {"conversation": 60.0, "detailed_description": 35.0, "complex_reasoning": 60.0, ALL: 155 / 3}
    )
    assert scores.relative["detailed_description"] == pytest.approx(3.5 / 7.5 * 100)
    assert scores.relative["complex_reasoning"] == pytest.approx(80.0)

    # A rerun asks nothing (every key is cached) and gives the same result.
    fake_openai.clear_log()
    assert judge(tmp_path, fake_openai, "answers.jsonl", "again.json") == 0
    assert fake_openai.chat_log() == []
    assert (
        json.loads((tmp_path / "again.json").read_text())["judgements"]
        == json.loads((tmp_path / "result.json").read_text())["judgements"]
    )
    # A changed answer is a new key: only that question is asked again.
    lines = (tmp_path / "answers.jsonl").read_text().replace('"good"', '"good (edited)"')
    (tmp_path / "answers.jsonl").write_text(lines)
    SCRIPT["conversation-42"] = ("good (edited)", "8 2\nworse", None)
    try:
        assert judge(tmp_path, fake_openai, "answers.jsonl", "edited.json") == 0
    finally:
        SCRIPT["conversation-42"] = ("good", "8 6\nBoth are fine.", None)
    assert len(fake_openai.chat_log()) == 1


def test_unanswered_questions_are_counted_not_scored(tmp_path, fake_openai):
    make_bench(tmp_path / "bench")
    write_answers(tmp_path / "answers.jsonl", {q: t for q, (t, _, _) in SCRIPT.items() if q != "complex_reasoning-73"})
    fake_openai.set_responder(scripted_judge)
    assert judge(tmp_path, fake_openai) == 0
    result = read_result(tmp_path / "result.json")
    assert result.counts()["complex_reasoning"] == {"judged": 1, "excluded": 0, "unanswered": 1}


def test_judge_without_usable_reply_is_excluded_not_scored(bench_and_answers, fake_openai):
    tmp_path = bench_and_answers
    fake_openai.set_responder(scripted_judge)
    # every judge request about the "better" answer is cut by the content filter (no usable text, twice)
    fake_openai.set_faults(
        rule=lambda body: "content_filter" if "\nbetter\n" in body["messages"][1]["content"] else None
    )
    assert judge(tmp_path, fake_openai) == 0
    by_id = {j.question_id: j for j in read_result(tmp_path / "result.json").judgements}
    assert (
        by_id["complex_reasoning-73"].status == "excluded" and by_id["complex_reasoning-73"].reason == "no judge reply"
    )
    assert by_id["complex_reasoning-73"].attempts == 2 and by_id["complex_reasoning-73"].model_score is None
    assert by_id["conversation-42"].status == "judged"


def test_a_judge_that_never_gives_scores_is_a_warning_and_exit_1(bench_and_answers, fake_openai, capsys, caplog):
    tmp_path = bench_and_answers
    fake_openai.set_responder(lambda body: "I cannot grade this.")
    assert judge(tmp_path, fake_openai) == 1
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "no answer" in r.getMessage()]
    assert len(warning) == 1 and "6 replies without two readable scores" in warning[0], warning
    assert "--judge-model" in warning[0] and "Traceback" not in capsys.readouterr().err
    result = read_result(tmp_path / "result.json")  # still written, for a look at the judge's replies
    assert {j.status for j in result.judgements} == {"excluded"}
    assert "Exit status 1 when no answer" in " ".join(_help(["bench", "judge", "--help"], capsys).split())


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out


def test_offline_overlap_judge(tmp_path, capsys):
    make_bench(tmp_path / "bench")
    ref = reference_text("conversation", 42)
    texts = {"conversation-42": ref, "conversation-73": "skier bends knees"}
    texts.update({q: "unrelated words only" for q in ("detailed_description-42", "complex_reasoning-42")})
    texts.update({q: "zzz" for q in ("detailed_description-73", "complex_reasoning-73")})
    write_answers(tmp_path / "answers.jsonl", texts)
    args = ["bench", "judge", "--bench", str(tmp_path / "bench"), "--answers", str(tmp_path / "answers.jsonl")]
    args += [
        "--cache",
        str(tmp_path / "j.sqlite"),
        "--judge-model",
        "offline-overlap",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert main(args) == 0
    assert "NOT GPT-4o" in capsys.readouterr().out
    result = read_result(tmp_path / "r.json")
    assert result.judge_label == OVERLAP_LABEL and result.judge_model == "offline-overlap"
    by_id = {j.question_id: j for j in result.judgements}
    assert (by_id["conversation-42"].reference_score, by_id["conversation-42"].model_score) == (10, 10)
    # "skier bends knees" against a 12-token reference ("the" dropped): P = 1, R = 3/12, F1 = 0.4 -> 1 + 9 * 0.4
    assert token_f1("skier bends knees", reference_text("conversation", 73)) == pytest.approx(0.4)
    assert by_id["conversation-73"].model_score == pytest.approx(4.6)
    assert by_id["detailed_description-73"].model_score == 1
    main(["bench", "report", str(tmp_path / "r.json"), "--out", str(tmp_path / "rep")])
    assert "NOT GPT-4o" in (tmp_path / "rep" / "report.md").read_text()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line_exit_2(bench_and_answers, capsys):
    tmp_path = bench_and_answers
    base = ["bench", "judge", "--bench", str(tmp_path / "bench"), "--cache", str(tmp_path / "j.sqlite")]
    # a judge model without a key or a URL
    assert main([*base, "--answers", str(tmp_path / "answers.jsonl"), "--out", str(tmp_path / "r.json")]) == 2
    assert "OPENAI_API_KEY" in (err := _one_line_error(capsys)) and "--judge-model offline-overlap" in err
    # answers for questions that are not in the benchmark
    write_answers(tmp_path / "answers.jsonl", {"conversation-5": "stray"})
    assert main([*base, "--answers", str(tmp_path / "answers.jsonl"), "--out", str(tmp_path / "r.json")]) == 2
    assert "conversation-5" in _one_line_error(capsys)
    # a missing image
    (tmp_path / "bench" / "images" / "COCO_val2014_000000000042.jpg").unlink()
    assert main([*base, "--answers", str(tmp_path / "answers.jsonl"), "--out", str(tmp_path / "r.json")]) == 2
    assert "COCO_val2014_000000000042.jpg" in _one_line_error(capsys)
    assert not (tmp_path / "r.json").exists()


SNAPSHOTS = ALL_SNAPSHOTS / "judge"


@pytest.mark.parametrize("category", TASKS)
def test_judge_prompt_snapshot(category):
    """A change to the judge's prompt or a rubric is a visible diff (UPDATE_SNAPSHOTS=1 rewrites them)."""
    rubrics = load_rubrics()
    messages = judge_messages(
        rubrics, category, "A person skis.\nperson: [0.1, 0.2, 0.5, 0.9]", "What is the skier doing?",
        "The skier bends both knees.", "The skier stands.",
    )  # fmt: skip
    retry = retry_messages(rubrics, messages, "no scores here")
    current = json.dumps({"messages": messages, "retry_turns": retry[len(messages) :]}, indent=1, ensure_ascii=False)
    path = SNAPSHOTS / f"{category}.json"
    check_snapshot(path, current + "\n", f"the {category} judge prompt")


def test_a_result_names_the_build_of_the_benchmark_it_was_judged_on(bench_and_answers, fake_openai):
    from keypoint_instruct.bench.layout import load_bench

    tmp_path = bench_and_answers
    fake_openai.set_responder(scripted_judge)
    assert judge(tmp_path, fake_openai) == 0
    result = read_result(tmp_path / "result.json")
    assert result.bench_fingerprint == load_bench(tmp_path / "bench").fingerprint != ""


def test_a_reasoning_judge_gets_its_own_body_and_judges(bench_and_answers, fake_openai, capsys):
    """o4-mini as the judge: max_completion_tokens and no temperature (the teacher's rules); max_tokens or
    temperature 0 would be a 400 on every judge request."""
    tmp_path = bench_and_answers
    fake_openai.set_responder(scripted_judge)
    fake_openai.set_access(reasoning_models={"o4-mini"})
    assert judge(tmp_path, fake_openai, "answers.jsonl", "result.json", "--judge-model", "o4-mini") == 0
    assert "judged 5, excluded 1" in capsys.readouterr().out
    entries = fake_openai.chat_log()
    assert len(entries) == 8 and {e.status for e in entries} == {200}
    assert all(set(e.body) == {"model", "messages", "max_completion_tokens", "seed"} for e in entries)
    assert {e.body["seed"] for e in entries} == {JUDGE_SEED}


def test_the_judge_progress_bar_is_labelled_judge_and_can_be_turned_off(bench_and_answers, fake_openai, capsys):
    tmp_path = bench_and_answers
    fake_openai.set_responder(scripted_judge)
    assert judge(tmp_path, fake_openai) == 0
    err = capsys.readouterr().err
    assert "judge:" in err and "teacher:" not in err, err
    (tmp_path / "judge.sqlite").unlink()
    assert judge(tmp_path, fake_openai, "answers.jsonl", "quiet.json", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "judge:" not in err and "req/s" not in err and "%|" not in err, err
