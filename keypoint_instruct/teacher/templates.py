"""Teacher prompt templates, loaded by task name from the data files under ``teacher/prompts/<task>/``.

A task folder holds ``system.txt`` and few-shot examples as ``examples/<n>.context.txt`` and
``examples/<n>.response.txt`` (taken in numeric order), plus ``examples/<n>.facts.txt``, the pose-notes block that
follows the example's context in the context mode "paper+facts". ``example_scenes.json`` holds the pixel-space
scenes the example contexts and pose notes are made from (a test rebuilds them with the project's formatter).
``detailed_description/instructions.txt`` lists the user instructions of the detailed descriptions, one per line;
each description example has its own in ``examples/<n>.instruction.txt``. ``pose_notes.txt`` is the sentence added
to every system message in the context mode "paper+facts".

The messages of a request are the system message, the few-shot (context, response) pairs as user/assistant turns,
and the image's context last: everything before the last message is byte-identical across the requests of a task,
so a provider's prompt cache applies. A detailed description's user turns end with an instruction on their last
line (after a blank line), the example's own or the image's (:func:`pick_instruction`): the teacher answers the
very instruction the dataset row pairs with its answer. The prompt version is a short sha256 of the template's file
bytes (for detailed descriptions the instruction list too, since it decides each image's instruction), the task and
the context mode; it is stored with every teacher response.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources

from keypoint_instruct.errors import PromptError
from keypoint_instruct.vocab import CONTEXT_MODES, DEFAULT_CONTEXT_MODE, TASKS

log = logging.getLogger(__name__)

POSE_NOTES_FILE = "pose_notes.txt"
INSTRUCTED_TASK = "detailed_description"  # the task whose requests end with an instruction
INSTRUCTIONS_FILE = "instructions.txt"
VERSION_LENGTH = 12  # hex digits of the sha256 kept as the prompt version


@dataclass(frozen=True)
class PromptTemplate:
    """The static part of a task's prompt; :meth:`messages` appends one image's context."""

    task: str
    context_mode: str
    system: str
    examples: tuple[tuple[str, str], ...]  # (context, ideal response)
    version: str
    example_instructions: tuple[str, ...] = ()  # one per example for a task that is asked an instruction, else ()
    instructions: tuple[str, ...] = ()  # the list an image's instruction is picked from (detailed description)

    @property
    def asks_instruction(self) -> bool:
        """True when each request ends with an instruction (the detailed description)."""
        return bool(self.example_instructions)

    def messages(self, context: str, instruction: str | None = None) -> list[dict]:
        """System message, few-shot user/assistant turns, then ``context`` as the last user message.

        A task that :attr:`asks_instruction` needs ``instruction``: it ends the last user message, after a blank line.
        """
        if self.asks_instruction != (instruction is not None):
            need = "needs an instruction" if self.asks_instruction else "takes no instruction"
            raise PromptError(f"the {self.task} prompt {need}")
        messages = [{"role": "system", "content": self.system}]
        for number, (example_context, response) in enumerate(self.examples):
            asked = self.example_instructions[number] if self.asks_instruction else None
            messages.append({"role": "user", "content": with_instruction(example_context, asked)})
            messages.append({"role": "assistant", "content": response})
        messages.append({"role": "user", "content": with_instruction(context, instruction)})
        return messages


def with_instruction(context: str, instruction: str | None) -> str:
    """A user turn: the context, then the instruction (if any) as its last line after a blank line."""
    return context if instruction is None else f"{context}\n\n{instruction}"


def _root():
    return resources.files(__package__) / "prompts"


def _read(path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise PromptError(f"prompt file {path} is missing; the package's prompt data is incomplete") from None


def _text(data: bytes, path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PromptError(f"prompt file {path} is not UTF-8 ({err})") from None
    text = text.replace("\r\n", "\n").strip("\n")
    if not text.strip():
        raise PromptError(f"prompt file {path} is empty")
    return text


def _example_numbers(folder) -> list[int]:
    numbers = set()
    for entry in folder.iterdir() if folder.is_dir() else ():
        stem, _, suffix = entry.name.partition(".")
        if suffix in ("context.txt", "response.txt") and stem.isdigit():
            numbers.add(int(stem))
    return sorted(numbers)


@cache
def load_prompt(task: str, context_mode: str = DEFAULT_CONTEXT_MODE) -> PromptTemplate:
    """The template of ``task`` for ``context_mode`` ("paper" or "paper+facts")."""
    if task not in TASKS:
        raise PromptError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if context_mode not in CONTEXT_MODES:
        raise PromptError(f"unknown context mode {context_mode!r}; expected one of {', '.join(CONTEXT_MODES)}")
    folder = _root() / task
    digest = hashlib.sha256(f"{task}\n{context_mode}\n".encode())

    def read(path) -> str:
        data = _read(path)
        digest.update(f"{path.name}:{len(data)}\n".encode())
        digest.update(data)
        return _text(data, path)

    system = read(folder / "system.txt")
    if context_mode == "paper+facts":
        system = f"{system}\n\n{read(_root() / POSE_NOTES_FILE)}"
    examples, asked = [], []
    for number in _example_numbers(folder / "examples"):
        context = read(folder / "examples" / f"{number}.context.txt")
        if context_mode == "paper+facts":  # the same blocks format_context(scene, "paper+facts") joins
            context = f"{context}\n\n{read(folder / 'examples' / f'{number}.facts.txt')}"
        if task == INSTRUCTED_TASK:
            asked.append(read(folder / "examples" / f"{number}.instruction.txt"))
        response = read(folder / "examples" / f"{number}.response.txt")
        examples.append((context, response))
    if len(examples) < 2:
        raise PromptError(f"prompt folder {folder} has {len(examples)} few-shot examples; expected at least 2")
    instructions = _instruction_lines(read(folder / INSTRUCTIONS_FILE), folder / INSTRUCTIONS_FILE) if asked else ()
    version = digest.hexdigest()[:VERSION_LENGTH]
    log.debug("loaded prompt %s/%s version %s with %d examples", task, context_mode, version, len(examples))
    return PromptTemplate(task, context_mode, system, tuple(examples), version, tuple(asked), instructions)


def _instruction_lines(text: str, path) -> tuple[str, ...]:
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(set(lines)) != len(lines):
        raise PromptError(f"{path} lists an instruction twice")
    return lines


@cache
def description_instructions() -> tuple[str, ...]:
    """The pose-focused instructions of detailed descriptions, in file order."""
    path = _root() / INSTRUCTED_TASK / INSTRUCTIONS_FILE
    return _instruction_lines(_text(_read(path), path), path)


def pick_instruction(image_id: int, instructions: tuple[str, ...] | list[str] | None = None) -> str:
    """The instruction for ``image_id``: a stable hash of the id picks it, the same on every run and machine.

    ``instructions`` is the list to pick from (default: the package's); a build passes the list the answer's
    prompt version was sent with, so it pairs the very instruction the teacher answered.
    """
    instructions = tuple(instructions) if instructions is not None else description_instructions()
    digest = hashlib.sha256(f"instruction:{int(image_id)}".encode()).digest()
    return instructions[int.from_bytes(digest[:8], "big") % len(instructions)]


@cache
def expected_output_tokens(task: str) -> int:
    """Mean o200k length of the task's few-shot responses (what the teacher is shown to write), or the default."""
    from keypoint_instruct.llm.pricing import DEFAULT_EXPECTED_OUTPUT, token_counter

    try:
        examples = load_prompt(task).examples
    except PromptError:
        return DEFAULT_EXPECTED_OUTPUT
    counter = token_counter()
    return round(sum(counter.count(response) for _, response in examples) / len(examples))
