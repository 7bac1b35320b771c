"""Judge a model's answers against the references, LLaVA-Bench (COCO) style.

The judge sees the symbolic context of the image (captions, boxes, keypoints), the question, the reference answer as
Assistant 1 and the model's answer as Assistant 2, and the category's rubric (a data file in ``prompts/judge/``). It
must put two scores 1-10 on its first line. A reply whose first line does not parse is asked again once, with a
follow-up turn (so the retry is a distinct request with its own cache key); if that fails too, the question is
excluded and counted, never scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from keypoint_instruct.bench.layout import Answer, Bench, read_text
from keypoint_instruct.errors import BenchmarkError
from keypoint_instruct.vocab import TASKS

log = logging.getLogger(__name__)

JUDGE_SEED = 20250405
JUDGE_MAX_TOKENS = 1024
_NUMBER = re.compile(r"(?<![\w.-])(\d+(?:\.\d+)?)(?!\w|\.\d)")
# Numbers on a score line that are not scores: "Assistant 1" labels, "/10" or "out of 10", "on a scale of 1-10".
_NOT_SCORES = re.compile(
    r"assistant[ \t]*#?(?P<who>[12])\b|(?:/|\bout[ \t]+of)[ \t]*10\b|\b1[ \t]*(?:-|–|to)[ \t]*10\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Rubrics:
    system: str
    by_category: dict[str, str]
    retry: str
    version: str  # hash of every judge prompt file


def _unwrap(text: str) -> str:
    """The files are wrapped for reading; the prompt gets one line per paragraph (blank lines separate them)."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def load_rubrics() -> Rubrics:
    """Read the judge's system prompt, one rubric per category and the retry nudge from ``prompts/judge/``."""
    folder = resources.files(__package__) / "rubrics"
    names = ("system", *TASKS, "retry")
    texts = {}
    digest = hashlib.sha256()
    for name in names:
        text = _unwrap((folder / f"{name}.txt").read_text(encoding="utf-8"))
        texts[name] = text
        digest.update(f"{name}\0{text}\0".encode())
    return Rubrics(
        system=texts["system"],
        by_category={c: texts[c] for c in TASKS},
        retry=texts["retry"],
        version=digest.hexdigest()[:12],
    )


def judge_messages(rubrics: Rubrics, category: str, context: str, question: str, reference: str, answer: str):
    """The chat messages of one judgement: reference first (Assistant 1), the model's answer second."""
    user = (
        f"[Context]\n{context}\n\n"
        f"[Question]\n{question}\n\n"
        f"[Assistant 1]\n{reference}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n"
        f"[Rubric]\n{rubrics.by_category[category]}"
    )
    return [{"role": "system", "content": rubrics.system}, {"role": "user", "content": user}]


def retry_messages(rubrics: Rubrics, messages: list[dict], bad_reply: str) -> list[dict]:
    """The follow-up conversation asking again after an unreadable reply."""
    return [*messages, {"role": "assistant", "content": bad_reply}, {"role": "user", "content": rubrics.retry}]


def _line_scores(line: str) -> tuple[list[float], list[str]]:
    """The numbers of a reply line that can be scores, and the assistant labels ("1", "2") it names, in order."""
    line = line.replace(",", " ").replace("*", " ")
    labels = [m.group("who") for m in _NOT_SCORES.finditer(line) if m.group("who")]
    return [float(n) for n in _NUMBER.findall(_NOT_SCORES.sub(" ", line))], labels


def parse_scores(text: str) -> tuple[float, float] | None:
    """(reference score, model score) from a judge reply, or None when it cannot be read without guessing.

    The scores belong on the first non-empty line ("8 7", "8, 7", "**8** **7**", "8/10 and 7/10", "Assistant 1: 8,
    Assistant 2: 7"); labels, "/10" and "1-10" are not scores. The one other layout read is one labelled score per
    line on the first two lines ("Assistant 1: 8" then "Assistant 2: 7"). Anything else, or a score outside 1..10,
    is None (the caller asks again once, then excludes the question).
    """
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    numbers, labels = _line_scores(lines[0])
    if len(numbers) == 1 and labels == ["1"] and len(lines) > 1:
        second, second_labels = _line_scores(lines[1])
        if len(second) == 1 and second_labels == ["2"]:
            numbers, labels = numbers + second, ["1", "2"]
    if labels not in ([], ["1", "2"]):  # "Assistant 2: 7, Assistant 1: 8" or a sentence about one of them
        return None
    if len(numbers) != 2 or not all(1 <= n <= 10 for n in numbers):
        return None
    return numbers[0], numbers[1]


@dataclass(frozen=True)
class Judgement:
    question_id: str
    category: str
    image_id: int
    status: str  # "judged" | "excluded" | "unanswered"
    reference_score: float | None
    model_score: float | None
    attempts: int
    judge_keys: tuple[str, ...]
    judge_text: str
    reason: str = ""  # why a question is not scored: "unparseable", "no judge reply" or "no answer"
    answer: str = ""  # the model's answer that was judged, for report.html ("" in results written before it was kept)


@dataclass(frozen=True)
class JudgeResult:
    model: str
    judge_model: str
    judge_label: str  # what reports print: says plainly when the judge is not GPT-4o
    rubric_version: str
    bench: str
    bench_meta: dict
    judgements: tuple[Judgement, ...]
    bench_fingerprint: str = ""  # Bench.fingerprint; "" in results written before it was kept

    def counts(self) -> dict[str, dict[str, int]]:
        out = {c: {"judged": 0, "excluded": 0, "unanswered": 0} for c in TASKS}
        for j in self.judgements:
            out[j.category][j.status] += 1
        return out

    def to_json(self) -> dict:
        data = asdict(self)
        data["counts"] = self.counts()
        return data

    def write(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_result(path: str | Path) -> JudgeResult:
    """Read a RESULT.json written by ``bench judge``."""
    path = Path(path)
    text = read_text(path, "a RESULT.json from `keypoint-instruct bench judge`")  # not a folder, an image, ...
    try:
        data = json.loads(text)
        judgements = tuple(Judgement(**{**j, "judge_keys": tuple(j["judge_keys"])}) for j in data["judgements"])
        return JudgeResult(
            model=data["model"],
            judge_model=data["judge_model"],
            judge_label=data["judge_label"],
            rubric_version=data["rubric_version"],
            bench=data["bench"],
            bench_meta=data.get("bench_meta", {}),
            judgements=judgements,
            bench_fingerprint=data.get("bench_fingerprint", ""),
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise BenchmarkError(f"{path} is not a RESULT.json of `bench judge` ({type(err).__name__}: {err})") from None


def answer_model(answers: dict[str, Answer]) -> str:
    if not answers:
        raise BenchmarkError("the answers file holds no answers")
    return next(iter(answers.values())).model


def check_complete(bench: Bench, answers: dict[str, Answer]) -> list[str]:
    """Question ids of the benchmark that have no answer (judged as 'unanswered', never scored)."""
    return [q.question_id for q in bench.questions if q.question_id not in answers]


def _judgement(question, status, scores, attempts, keys, text, reason="") -> Judgement:
    return Judgement(
        question_id=question.question_id,
        category=question.category,
        image_id=question.image_id,
        status=status,
        reference_score=scores[0] if scores else None,
        model_score=scores[1] if scores else None,
        attempts=attempts,
        judge_keys=tuple(keys),
        judge_text=text,
        reason=reason,
    )


def _request_maker(bench: Bench, rubrics: Rubrics, settings):
    """``request(question, messages)``: the judge's chat request about a question, filed under ``judge/<category>``."""
    from keypoint_instruct.llm.request import ChatRequest

    def request(question, messages) -> ChatRequest:
        body = settings.body(messages)
        context = bench.contexts[question.image_id]
        return ChatRequest(
            task=f"judge/{question.category}",
            item_id=question.image_id,
            collection=context.coco_split,
            prompt_version=rubrics.version,
            body=body,
        )

    return request


def _verdict(question, answered: bool, first: dict, retries: dict, texts: dict[str, str]) -> Judgement:
    """A question's judgement from the reply to its last asking: judged, excluded (and why) or unanswered."""
    if not answered:
        return _judgement(question, "unanswered", None, 0, (), "", "no answer")
    qid = question.question_id
    reqs = [first[qid]] + ([retries[qid]] if qid in retries else [])
    last = texts.get(reqs[-1].key)
    scores = parse_scores(last or "")
    status = "judged" if scores else "excluded"
    reason = "" if scores else ("unparseable" if last is not None else "no judge reply")
    return _judgement(question, status, scores, len(reqs), [r.key for r in reqs], last or "", reason)


def run_judge(
    bench: Bench,
    answers: dict[str, Answer],
    make_judge,
    cache,
    *,
    judge_model: str,
    judge_label: str,
    seed: int = JUDGE_SEED,
    max_tokens: int = JUDGE_MAX_TOKENS,
    concurrency: int = 16,
    progress: bool = True,
) -> JudgeResult:
    """Judge every answered question through the engine and cache; retry unreadable replies once, then exclude.

    ``progress``: a progress bar labelled ``judge`` (``judge retry`` for the second asking)."""
    from keypoint_instruct.bench.calls import complete_all
    from keypoint_instruct.llm.request import GenerationSettings

    rubrics = load_rubrics()
    model = answer_model(answers)
    # The teacher's body rules: a reasoning judge gets max_completion_tokens and no temperature.
    settings = GenerationSettings(model=judge_model, temperature=0.0, max_tokens=max_tokens, seed=seed)
    request = _request_maker(bench, rubrics, settings)
    answered = [q for q in bench.questions if q.question_id in answers]
    first = {}
    for q in answered:
        messages = judge_messages(
            rubrics,
            q.category,
            bench.contexts[q.image_id].context,
            q.text,
            bench.references[q.question_id].text,
            answers[q.question_id].text,
        )
        first[q.question_id] = request(q, messages)
    calls = {"concurrency": concurrency, "progress": progress}
    texts = complete_all(make_judge, cache, list(first.values()), label="judge", **calls)
    retries = {}
    for q in answered:
        req = first[q.question_id]
        if parse_scores(texts.get(req.key, "")) is None:
            retries[q.question_id] = request(q, retry_messages(rubrics, req.body["messages"], texts.get(req.key, "")))
    if retries:
        log.warning(
            "%d judge repl%s did not parse; asking again once", len(retries), "y" if len(retries) == 1 else "ies"
        )
        texts.update(complete_all(make_judge, cache, list(retries.values()), label="judge retry", **calls))
    judgements = [_verdict(q, q.question_id in answers, first, retries, texts) for q in bench.questions]
    kept = {qid: answer.text for qid, answer in answers.items()}  # report.html shows the answer judged
    judgements = [replace(j, answer=kept[j.question_id]) if j.question_id in kept else j for j in judgements]
    result = JudgeResult(
        model=model,
        judge_model=judge_model,
        judge_label=judge_label,
        rubric_version=rubrics.version,
        bench=str(bench.root),
        bench_meta=bench.meta,
        judgements=tuple(judgements),
        bench_fingerprint=bench.fingerprint,
    )
    counts = result.counts()
    log.info(
        "judged %d, excluded %d, unanswered %d",
        *(sum(c[k] for c in counts.values()) for k in ("judged", "excluded", "unanswered")),
    )
    return result
