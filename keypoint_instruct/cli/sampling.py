"""The teacher's sampling flags, shared by ``generate``, ``batch submit`` and ``bench build``.

``--temperature``, ``--top-p``, ``--max-tokens`` (``--max-completion-tokens`` for OpenAI reasoning models) and
``--seed`` (``--teacher-seed`` on ``bench build``, whose ``--seed`` draws the images) become a
:class:`~keypoint_instruct.llm.request.GenerationSettings`. The settings are part of every request body, so of its
cache key: a run with other values asks again rather than reusing the answers of the defaults (README, "Sampling
settings"). A flag the model does not take is a usage error before anything is sent.
"""

from __future__ import annotations

import argparse
import math

from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm.request import GenerationSettings, is_reasoning_model

DEFAULTS = GenerationSettings()


def _float_in(low: float, high: float, *, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or value > high:
            raise argparse.ArgumentTypeError(
                f"expected a number {'above' if low_open else 'from'} {low:g} {'up ' if low_open else ''}to {high:g}, "
                f"got {text}"
            )
        return value

    return parse


def _tokens(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 token, got {value}")
    return value


def _seed(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None


def add_sampling_options(
    parser: argparse.ArgumentParser, *, seed_flag: str = "--seed", for_benchmark: bool = False
) -> None:
    """The teacher's sampling flags; ``seed_flag`` names the seed's flag (``bench build`` has its own --seed).

    ``for_benchmark``: the flags of ``bench build``, which has no --max-cost and uses no cut answer as a reference.
    """
    cut = (
        "is not used as a reference (another image is drawn)"
        if for_benchmark
        else "is stored as truncated and left out of the dataset"
    )
    cap = "" if for_benchmark else "; --max-cost counts the limit"
    group = parser.add_argument_group(
        "teacher sampling (part of every request, so of its cache key: other values ask again; README, "
        "'Sampling settings')"
    )
    group.add_argument(
        "--temperature",
        type=_float_in(0.0, 2.0),
        default=None,
        help=f"sampling temperature, 0 to 2 (default: {DEFAULTS.temperature:g}, the value every cache so far was "
        "written with; the OpenAI API's own default is 1, more varied). Not for reasoning models",
    )
    group.add_argument(
        "--top-p",
        type=_float_in(0.0, 1.0, low_open=True),
        default=None,
        help="nucleus sampling, above 0 up to 1 (default: not sent, the API's default of 1). Not for reasoning models",
    )
    group.add_argument(
        "--max-tokens",
        type=_tokens,
        default=None,
        help=f"longest answer in tokens (default: {DEFAULTS.max_tokens}); an answer cut there {cut}. You pay for the "
        f"tokens written, not for the limit{cap}",
    )
    group.add_argument(
        "--max-completion-tokens",
        type=_tokens,
        default=None,
        help=f"a reasoning model's output limit, its hidden reasoning included (default: "
        f"{DEFAULTS.reasoning_max_tokens}); only for reasoning models (o1, o3, o4-mini, gpt-5)",
    )
    group.add_argument(
        seed_flag,
        dest="teacher_seed",
        type=_seed,
        default=DEFAULTS.seed,
        metavar="SEED",
        help=f"seed sent with each request, or 'none' to send none (default: {DEFAULTS.seed}); providers treat it "
        "as best effort",
    )


def generation_settings(args: argparse.Namespace, model: str) -> GenerationSettings:
    """The settings the sampling flags ask for ``model``; a flag the model does not take is a :class:`UsageError`."""
    given = {name: getattr(args, name, None) for name in ("temperature", "top_p", "max_tokens")}
    completion = getattr(args, "max_completion_tokens", None)
    if is_reasoning_model(model):
        refused = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
        if refused:
            hint = " (use --max-completion-tokens)" if given["max_tokens"] is not None else ""
            raise UsageError(
                f"{model} is a reasoning model: it takes no {', '.join(refused)}{hint}; it samples at its own defaults"
            )
    elif completion is not None:
        raise UsageError(f"--max-completion-tokens is for reasoning models; {model} takes --max-tokens")
    chosen = {name: value for name, value in given.items() if value is not None}
    if completion is not None:
        chosen["reasoning_max_tokens"] = completion
    return GenerationSettings(model=model, seed=getattr(args, "teacher_seed", DEFAULTS.seed), **chosen)
