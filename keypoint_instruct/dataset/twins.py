"""Images whose contexts are the same text share one teacher answer; the build gives it to each of them.

A request's key is the hash of its body, and the body holds the image's context, not its id: two images with the
same context (a COCO image listed twice under two ids, with the same captions and annotations) make one request.
``generate`` sends it once and stores the answer under the first image; the others count as answered. The build
must agree, or it would report them as having no response: :func:`with_twins` adds, for every answer of an image
with twins, a copy filed under each twin (a :class:`SharedAnswer`, counted as shared, not as a response read or
paid for). One answer per group is what the money bought, and each image is a real image of the split, so each
gets its rows; sending the same context again per image would pay for a near-duplicate answer.

A detailed-description request also ends with the image's instruction, picked by image id: twins share its key
only when their picks agree (``shares`` says so); otherwise each twin was asked its own request and keeps its own.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from keypoint_instruct.coco.context import caption_line, format_context
from keypoint_instruct.llm.store.cache import CachedResponse


@dataclass(frozen=True)
class SharedAnswer(CachedResponse):
    """An answer filed under an image other than the one it was stored for: the images' contexts are the same."""

    shared_from: int = 0  # the image id the answer is stored under


def identical_contexts(scenes: Mapping[int, object], context_mode: str) -> dict[int, tuple[int, ...]]:
    """``image id -> the other images whose context in context_mode is the same text``, for images that have any.

    Only images with the same caption lines can have the same context, so only those are formatted.
    """
    by_captions: dict[tuple[str, ...], list] = defaultdict(list)
    for scene in scenes.values():
        by_captions[tuple(caption_line(c) for c in scene.captions)].append(scene)
    twins: dict[int, tuple[int, ...]] = {}
    for candidates in by_captions.values():
        if len(candidates) < 2:
            continue
        by_text: dict[str, list[int]] = defaultdict(list)
        for scene in candidates:
            by_text[format_context(scene, context_mode)].append(scene.image_id)
        for ids in by_text.values():
            for image_id in ids if len(ids) > 1 else ():
                twins[image_id] = tuple(other for other in ids if other != image_id)
    return twins


def _order(response: CachedResponse) -> tuple:
    return response.task, response.image_id, response.key


def with_twins(
    responses: Iterable[CachedResponse],
    twins: Mapping[int, tuple[int, ...]],
    stored: Iterable[CachedResponse],
    shares: Callable[[CachedResponse, int], bool] | None = None,
) -> Iterator[CachedResponse]:
    """``responses`` (ordered by task, image id, key) with a :class:`SharedAnswer` per answer and twin, in order.

    ``stored`` is a second pass over the same responses, read only for the answers of images with twins (so that
    a twin ordered before the image its answer is stored under still gets it in order). ``shares(answer, twin)``,
    when given, says whether the twin's request is the answer's very request (else the twin gets no copy).
    """
    if not twins:
        yield from responses
        return
    copies = [
        SharedAnswer(**{**dataclasses.asdict(answer), "image_id": twin}, shared_from=answer.image_id)
        for answer in stored
        if answer.image_id in twins
        for twin in twins[answer.image_id]
        if shares is None or shares(answer, twin)
    ]
    copies.sort(key=_order)
    yield from heapq.merge(responses, copies, key=_order)
