"""Scene -> the context text a teacher reads, in the paper's format (its Fig. 1); and which images to use.

The context is the captions, one per line in annotation order, a blank line, then one line per instance in
annotation-id order::

    A skier follows a trail through some trees.
    ...

    person: [0.419, 0.023, 0.842, 0.987], keypoints: [0.479, 0.391, 2, ..., 0.477, 0.503, 2]
    skis: [0.469, 0.511, 0.513, 0.532]

Boxes are COCO ``[x, y, w, h]`` turned into corners ``[x1, y1, x2, y2]``; every coordinate is divided by the
image's width or height, clamped to [0, 1] and printed as Python prints ``round(value, 3)``. Keypoints are
``x, y, v`` triples in COCO order with an integer visibility; an unlabelled keypoint (v = 0) prints
``0.0, 0.0, 0``. A person without labelled keypoints gets its box only; crowd regions are left out. Captions are
stripped of surrounding whitespace and every run of whitespace inside them (COCO's carry stray spaces, tabs and
newlines) becomes one space, so each caption is exactly one line and a blank line only ever ends the captions.
Everything here is pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.errors import UsageError
from keypoint_instruct.vocab import CONTEXT_MODES


def normalize(value: float, size: float) -> float:
    """``value / size`` clamped to [0, 1] and rounded to 3 decimals (never ``-0.0``)."""
    ratio = value / size
    if not ratio > 0.0:  # also catches NaN and -0.0
        return 0.0
    return 1.0 if ratio >= 1.0 else round(ratio, 3)


def box_corners(bbox: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """COCO ``[x, y, w, h]`` in pixels -> normalized ``[x1, y1, x2, y2]``."""
    x, y, w, h = bbox
    return [normalize(x, width), normalize(y, height), normalize(x + w, width), normalize(y + h, height)]


def keypoint_values(keypoints: tuple[float, ...], width: int, height: int) -> list[float | int]:
    """51 pixel numbers -> normalized ``x, y`` with an integer visibility; unlabelled points become 0.0, 0.0, 0."""
    values: list[float | int] = []
    for i in range(0, len(keypoints), 3):
        x, y, v = keypoints[i : i + 3]
        if v > 0:
            values += [normalize(x, width), normalize(y, height), int(v)]
        else:
            values += [0.0, 0.0, 0]
    return values


def _text(value: float, size: float) -> str:
    """``repr(normalize(value, size))``, inlined: this runs millions of times on a full split."""
    ratio = value / size
    if not ratio > 0.0:
        return "0.0"
    return "1.0" if ratio >= 1.0 else repr(round(ratio, 3))


@lru_cache(maxsize=256)
def _pixel_texts(size: int) -> dict[float, str]:
    """``_text(p, size)`` of every whole pixel p in 0..size of one image side, keyed by value (COCO keypoints are
    whole pixels: floats from JSON, ints in scenes built in code; both find their entry)."""
    return {float(p): _text(p, size) for p in range(size + 1)}


def labelled_keypoints(instance: Instance) -> int:
    """How many keypoints of ``instance`` are labelled (v > 0); 0 for non-person annotations."""
    if instance.keypoints is None:
        return 0
    return len([v for v in instance.keypoints[2::3] if v > 0])


def _has_keypoints(instance: Instance, at_least: int) -> bool:
    """``labelled_keypoints(instance) >= at_least``, without counting where the answer is known sooner."""
    if at_least <= 0:
        return True
    if at_least == 1:
        return instance.keypoints is not None and any(v > 0 for v in instance.keypoints[2::3])
    return labelled_keypoints(instance) >= at_least


def _keypoints_text(kps: tuple[float, ...], width: int, height: int) -> str | None:
    """``[x, y, v, ...]`` of a person's keypoints; None when none is labelled."""
    xs, ys = _pixel_texts(width), _pixel_texts(height)
    parts = []
    labelled = False
    for x, y, v in zip(kps[0::3], kps[1::3], kps[2::3], strict=True):
        if v > 0:
            labelled = True
            tx = xs.get(x)  # a whole pixel inside the image; else worked out
            ty = ys.get(y)
            parts.append(
                f"{_text(x, width) if tx is None else tx}, {_text(y, height) if ty is None else ty}, {int(v)}"
            )
        else:
            parts.append("0.0, 0.0, 0")
    return "[" + ", ".join(parts) + "]" if labelled else None


def instance_line(instance: Instance, width: int, height: int) -> str:
    """One object line: ``name: [x1, y1, x2, y2]``, plus ``, keypoints: [...]`` for a labelled person."""
    x, y, w, h = instance.bbox
    line = (
        f"{instance.category}: [{_text(x, width)}, {_text(y, height)}, {_text(x + w, width)}, {_text(y + h, height)}]"
    )
    kps = instance.keypoints
    if kps is not None and (text := _keypoints_text(kps, width, height)) is not None:
        line += f", keypoints: {text}"
    return line


def caption_line(caption: str) -> str:
    """``caption`` on one line: stripped, with every inner run of whitespace (newlines too) made one space."""
    return " ".join(caption.split())


def format_context(scene: Scene, mode: str = "paper") -> str:
    """The teacher's view of ``scene``. ``mode="paper+facts"`` appends the pose-facts block after a blank line."""
    if mode not in CONTEXT_MODES:
        raise UsageError(f"unknown context mode {mode!r} (expected one of: {', '.join(CONTEXT_MODES)})")
    captions = "\n".join(line for line in map(caption_line, scene.captions) if line)
    objects = "\n".join(instance_line(inst, scene.width, scene.height) for inst in scene.instances if not inst.iscrowd)
    blocks = [captions, objects]
    if mode == "paper+facts":
        from keypoint_instruct.coco.posenotes import facts_block

        blocks.append(facts_block(scene))
    return "\n\n".join(block for block in blocks if block)


def people(scene: Scene, min_keypoints: int = 0) -> int:
    """Non-crowd person instances of ``scene`` with at least ``min_keypoints`` labelled keypoints."""
    return len(
        [
            inst
            for inst in scene.instances
            if inst.category == "person" and not inst.iscrowd and _has_keypoints(inst, min_keypoints)
        ]
    )


def select_scenes(
    scenes: Mapping[int, Scene] | Iterable[Scene],
    *,
    min_persons: int = 1,
    min_keypoints: int = 1,
    limit: int | None = None,
) -> list[Scene]:
    """Scenes (in image-id order) with at least ``min_persons`` people having ``min_keypoints`` labelled keypoints.

    The default keeps every image with at least one person with a labelled keypoint. ``limit`` keeps the first N.
    """
    if min_persons < 0 or min_keypoints < 0 or (limit is not None and limit < 0):
        raise UsageError("min_persons, min_keypoints and limit must be zero or positive")
    if min_keypoints > 17:
        raise UsageError(f"min_keypoints is {min_keypoints}, but a COCO person has 17 keypoints")
    items = scenes.values() if isinstance(scenes, Mapping) else scenes
    chosen: list[Scene] = []
    for scene in sorted(items, key=lambda s: s.image_id):
        if limit is not None and len(chosen) >= limit:
            break
        if people(scene, min_keypoints) >= min_persons:
            chosen.append(scene)
    return chosen
