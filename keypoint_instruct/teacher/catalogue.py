"""What the teacher's prompt versions stand for: their context mode and, for detailed descriptions, instructions.

A prompt version is a hash of a task's prompt files and context mode. The runs that send teacher requests
(``generate``, ``batch submit``, ``bench build``) record what their versions stand for in the response cache
(:class:`keypoint_instruct.llm.store.prompts.PromptCatalogue`), so that a build made after the prompt files changed
still knows each answer's context mode and the instruction list its detailed-description requests were picked from.
The versions of the prompt files installed now are known without a record; a version neither recorded nor installed
(an answer of an earlier keypoint-instruct, before the cache kept records) has no known mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.prompts import PromptCatalogue
from keypoint_instruct.teacher.templates import description_instructions, load_prompt, pick_instruction
from keypoint_instruct.vocab import CONTEXT_MODES, TASKS


def details(task: str, context_mode: str) -> dict:
    """What the version of ``task`` in ``context_mode`` stands for, as it is recorded."""
    template = load_prompt(task, context_mode)
    found: dict = {"context_mode": context_mode}
    if template.asks_instruction:
        found["instructions"] = list(template.instructions)
    return found


def record_prompts(cache: ResponseCache, tasks: Iterable[str], context_mode: str) -> None:
    """Record the current prompt versions of ``tasks`` in ``context_mode`` in ``cache`` (before sending them)."""
    PromptCatalogue(cache).record(
        {load_prompt(task, context_mode).version: (task, details(task, context_mode)) for task in tasks}
    )


@dataclass(frozen=True)
class KnownPrompts:
    """Prompt versions with what they stand for: those recorded in a cache and those of the installed files."""

    versions: dict[str, tuple[str, dict]]

    def context_mode(self, version: str) -> str | None:
        """The context mode ``version`` was sent in, or None when nothing says."""
        entry = self.versions.get(version)
        return entry[1].get("context_mode") if entry else None

    def instruction(self, image_id: int, version: str) -> str:
        """The instruction a detailed description of ``version`` was asked for ``image_id``.

        A version without a recorded list (answered before the teacher was sent an instruction) gets the installed
        list's pick: the teacher saw no instruction then, and the build paired this one as it always did.
        """
        entry = self.versions.get(version)
        instructions = entry[1].get("instructions") if entry else None
        return pick_instruction(image_id, instructions or description_instructions())


def installed_versions() -> dict[str, tuple[str, dict]]:
    """The versions of the prompt files installed now, every task and context mode."""
    return {load_prompt(t, m).version: (t, details(t, m)) for t in TASKS for m in CONTEXT_MODES}


def known_prompts(cache: ResponseCache | None = None) -> KnownPrompts:
    """The installed versions, and those recorded in ``cache`` (a record wins: it is what was sent)."""
    versions = installed_versions()
    if cache is not None:
        versions.update(PromptCatalogue(cache).read())
    return KnownPrompts(versions)
