"""Teacher requests built from scenes and prompt templates: one chat request per image and task."""

from __future__ import annotations

from collections.abc import Iterable

from keypoint_instruct.coco.annotations import Scene
from keypoint_instruct.coco.context import format_context
from keypoint_instruct.llm.request import ChatRequest, GenerationSettings
from keypoint_instruct.teacher.templates import load_prompt, pick_instruction
from keypoint_instruct.vocab import DEFAULT_CONTEXT_MODE


def build_requests(
    scenes: Iterable[Scene],
    task: str,
    settings: GenerationSettings,
    context_mode: str = DEFAULT_CONTEXT_MODE,
    coco_split: str | None = None,
) -> list[ChatRequest]:
    """One request per scene for ``task``: the template's static prefix first, then the scene's context.

    A detailed-description request ends with the image's instruction (:func:`pick_instruction` from the template's
    list), which the build pairs with the answer. Each request carries its scene as ``payload`` (what the offline
    teacher answers from; never part of the key).
    """
    template = load_prompt(task, context_mode)

    def instruction(scene: Scene) -> str | None:
        return pick_instruction(scene.image_id, template.instructions) if template.asks_instruction else None

    return [
        ChatRequest(
            task=task,
            item_id=scene.image_id,
            collection=coco_split or scene.coco_split,
            prompt_version=template.version,
            body=settings.body(template.messages(format_context(scene, context_mode), instruction(scene))),
            payload=scene,
        )
        for scene in scenes
    ]
