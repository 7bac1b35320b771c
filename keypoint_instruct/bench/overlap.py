"""``offline-overlap``: a deterministic stand-in judge for runs without an API key. It is NOT GPT-4o.

It reads the two answers out of the judge prompt and scores them by lexical overlap with the reference: token F1
(SQuAD-style: lower case, no punctuation or articles, multiset overlap). Assistant 1, the reference, overlaps itself
fully and scores 10; the model's answer scores ``1 + 9 * F1``. It says nothing about whether an answer is right,
only how much of the reference's wording it shares, so its scores only show that the pipeline runs end to end.
"""

from __future__ import annotations

import re
from collections import Counter

from keypoint_instruct.llm.request import ChatRequest, Completion
from keypoint_instruct.vocab import OFFLINE_JUDGE_MODEL

OVERLAP_LABEL = "offline-overlap (lexical token F1 with the reference; NOT GPT-4o)"

_TOKEN = re.compile(r"[a-z0-9]+")
_ARTICLES = frozenset({"a", "an", "the"})
_SECTION = r"\[{name}\]\n(?P<text>.*?)\n\n\[End of {name}\]"


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall of ``prediction`` against ``reference`` (0 when either is empty)."""
    pred, ref = tokens(prediction), tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _section(prompt: str, name: str) -> str:
    match = re.search(_SECTION.format(name=re.escape(name)), prompt, re.DOTALL)
    return match.group("text") if match else ""


class OverlapJudge:
    """A :class:`~keypoint_instruct.llm.request.ChatModel` scoring by token F1; usable through the engine and cache."""

    model = OFFLINE_JUDGE_MODEL

    async def complete(self, request: ChatRequest) -> Completion:
        user = next(m["content"] for m in request.body["messages"] if m["role"] == "user")
        reference, answer = _section(user, "Assistant 1"), _section(user, "Assistant 2")
        ref_score = round(1 + 9 * token_f1(reference, reference), 1)
        f1 = token_f1(answer, reference)
        model_score = round(1 + 9 * f1, 1)
        text = (
            f"{ref_score:g} {model_score:g}\n"
            f"{OVERLAP_LABEL}: token F1 of Assistant 2 with Assistant 1 = {f1:.3f}; score = 1 + 9 x F1. "
            "This measures shared wording only, not correctness."
        )
        return Completion(
            text=text,
            finish_reason="stop",
            prompt_tokens=0,
            completion_tokens=0,
            cached_tokens=0,
            model=OFFLINE_JUDGE_MODEL,
        )
