"""COCO annotation files -> :class:`Scene` objects, one per image.

The three files of a split (``annotations/{captions,instances,person_keypoints}_<split>.json``) are decoded
straight from the page cache into msgspec Structs that keep only the fields a scene needs; the segmentation
polygons, which are most of the bytes, are skipped without being built. The Struct types already hold the schema's
rules (four box numbers, sizes >= 0, 51 keypoint numbers, positive image sizes), a few set operations check the ids
(unique, known images and categories), and the join groups the annotations per image in one pass.

When anything is off, :func:`keypoint_instruct.coco.checks.find_problem` reads the files again the careful way and
raises the :class:`~keypoint_instruct.errors.CocoFormatError` that names the file and the annotation or image id.
pycocotools is not on this path any more (its index cost more than the whole join): the tests hold the scenes to
a bare pycocotools join, and the benchmark measures against a bare pycocotools load. This module formats nothing
(see :mod:`keypoint_instruct.coco.context`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import mmap
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec

from keypoint_instruct.coco.checks import find_problem
from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

log = logging.getLogger(__name__)

ANNOTATION_KINDS = ("captions", "instances", "person_keypoints")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")  # val2014, train2017, ...: it becomes part of file and folder names


class Instance(msgspec.Struct, frozen=True, gc=False):
    """One annotated object of an image (a person, a crowd region, a pair of skis).

    Immutable and compared by value, like the frozen dataclass it was; a msgspec Struct because a split has ~860k
    of them: one is built ~8x faster and, holding only numbers and strings, is never visited by the garbage collector.
    """

    id: int
    category: str
    bbox: tuple[float, float, float, float]  # COCO [x, y, w, h] in pixels
    iscrowd: bool
    keypoints: tuple[float, ...] | None  # 17 * (x, y, v) in pixels; None when not a person annotation
    num_keypoints: int  # labelled keypoints (v > 0)


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything the annotations say about one image."""

    image_id: int
    file_name: str
    coco_split: str
    width: int
    height: int
    captions: tuple[str, ...]  # annotation-file order
    instances: tuple[Instance, ...]  # annotation-id order, crowd regions included


# --- typed decoding: only these fields are materialised, everything else (segmentations) is skipped -----------
# The types are as strict as the checks of coco.checks (tuple lengths, sizes >= 0, 51 keypoint numbers), so a file
# that decodes here passes them; gc=False: the records hold no references the garbage collector needs to follow.

_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_Size = Annotated[float, msgspec.Meta(ge=0)]
_JOINTS = len(KEYPOINT_NAMES)
_NUMBERS = 3 * _JOINTS  # x, y, v per keypoint
_Keypoints = Annotated[tuple[float, ...], msgspec.Meta(min_length=_NUMBERS, max_length=_NUMBERS)]


class _Image(msgspec.Struct, gc=False):
    id: int
    file_name: str
    width: _PositiveInt
    height: _PositiveInt


class _Category(msgspec.Struct, gc=False):
    id: int
    name: str
    keypoints: list[str] | msgspec.UnsetType = msgspec.UNSET  # keypoint names: only person_keypoints files


class _Object(msgspec.Struct, gc=False):  # an annotation of the instances file
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, _Size, _Size]  # COCO [x, y, w, h]
    iscrowd: int = 0
    keypoints: tuple[float, ...] = ()  # not in COCO's instances files; typed as coco.checks types it


class _Person(msgspec.Struct, gc=False):  # an annotation of the person_keypoints file
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, _Size, _Size]
    keypoints: _Keypoints
    iscrowd: int = 0


class _Caption(msgspec.Struct, gc=False):
    id: int
    image_id: int
    caption: str


class _InstancesFile(msgspec.Struct):
    images: list[_Image]
    annotations: list[_Object]
    categories: list[_Category]


class _KeypointsFile(msgspec.Struct):  # the images repeat the instances file's: skipped
    annotations: list[_Person]


class _CaptionsFile(msgspec.Struct):  # the images repeat the instances file's: skipped
    annotations: list[_Caption]


_BY_ID = operator.attrgetter("id")
_DECODERS = {
    "instances": msgspec.json.Decoder(_InstancesFile),
    "person_keypoints": msgspec.json.Decoder(_KeypointsFile),
    "captions": msgspec.json.Decoder(_CaptionsFile),
}


def annotation_file(coco_root: str | Path, split: str, kind: str) -> Path:
    """``<coco_root>/annotations/<kind>_<split>.json``."""
    return Path(coco_root) / "annotations" / f"{kind}_{split}.json"


def image_path(coco_root: str | Path, scene: Scene) -> Path:
    """Where the JPEG of ``scene`` lives: ``<coco_root>/<split>/<file_name>``."""
    return Path(coco_root) / scene.coco_split / scene.file_name


def available_splits(coco_root: str | Path) -> list[str]:
    """Splits that have an instances file under ``<coco_root>/annotations``."""
    folder = Path(coco_root) / "annotations"
    return sorted(p.name[len("instances_") : -len(".json")] for p in folder.glob("instances_*.json"))


def _compressed(path: Path) -> Path | None:
    """``<path>.gz`` or ``<path>.zip`` when one of them lies where ``path`` should be."""
    return next((c for c in (path.with_name(path.name + ext) for ext in (".gz", ".zip")) if c.exists()), None)


def _check_split(coco_root: Path, split: str) -> None:
    if not coco_root.is_dir():
        problem = "is not a folder" if coco_root.exists() else "does not exist"
        raise InputNotFoundError(f"COCO root {coco_root} {problem} (expected a folder with annotations/)")
    if not SPLIT_NAME.fullmatch(split):
        raise CocoFormatError(f"split name {split!r} is not a COCO split name like val2014 or train2017")
    if not (coco_root / "annotations").is_dir():
        hint = ""
        if coco_root.name == "annotations" or any(coco_root.glob("instances_*.json")):
            hint = "; it looks like the annotations folder itself: pass its parent"
        elif archive := next(iter(sorted(coco_root.glob("annotations*.zip"))), None):
            hint = f"; extract {archive.name} there first"
        raise InputNotFoundError(
            f"COCO root {coco_root} has no annotations/ folder (expected "
            f"{annotation_file(coco_root, split, 'instances')} and its captions and person_keypoints files){hint}"
        )
    paths = [annotation_file(coco_root, split, kind) for kind in ANNOTATION_KINDS]
    if not any(p.exists() or _compressed(p) for p in paths):
        known = ", ".join(available_splits(coco_root)) or "none"
        raise InputNotFoundError(
            f"unknown split {split!r}: no annotation files for it under {coco_root / 'annotations'} "
            f"(splits found: {known})"
        )
    for path in paths:
        if not path.is_file():
            packed = _compressed(path)
            hint = f"; found {packed.name}: decompress it there" if packed else ""
            raise InputNotFoundError(
                f"annotation file {path} is missing (a split needs {', '.join(ANNOTATION_KINDS)}){hint}"
            )


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic garbage collector: decoding and joining create millions of objects but no cycles, and
    collections over that growing heap would otherwise take a large part of the loading time.

    On the way out, what was made is moved to the oldest generation at once (``gc.freeze`` + ``gc.unfreeze``: two
    list splices) instead of being walked by the young generation's next collection (~0.4 s for the ~1.5M tuples
    and scenes of train2017). Skipped when the caller has frozen objects of its own, which unfreeze would release.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def load_scenes(coco_root: str | Path, split: str) -> dict[int, Scene]:
    """Load one split of a COCO tree into scenes keyed (and ordered) by image id."""
    root = Path(coco_root)
    _check_split(root, split)
    paths = {kind: annotation_file(root, split, kind) for kind in ANNOTATION_KINDS}
    with _no_gc():
        scenes = _load(paths, split)
    if isinstance(scenes, str):  # something in the files is off: find it the careful way, and name it
        find_problem(paths)
        raise CocoFormatError(f"{paths['instances'].parent}: the {split} annotation files do not join ({scenes})")
    log.debug("loaded %d images of %s from %s", len(scenes), split, root)
    return scenes


def _read(path: Path, kind: str):
    """Decode ``path`` straight from the page cache: mapping the file spares a copy of its bytes."""
    with open(path, "rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return _DECODERS[kind].decode(handle.read())
        with mapped:
            return _DECODERS[kind].decode(mapped)


def _load(paths: dict[str, Path], split: str) -> dict[int, Scene] | str:
    """The scenes of the split, or what failed (coco.checks then names the file and id)."""
    try:
        inst = _read(paths["instances"], "instances")
        if inst.categories and all(cat.keypoints is not msgspec.UNSET for cat in inst.categories):
            return "categories with keypoint names"  # a person_keypoints file in the place of the instances file
        images = {img.id: img for img in inst.images}
        if len(images) != len(inst.images) and any(img != images[img.id] for img in inst.images):
            return "an image listed twice"  # with different records (twice alike is harmless)
        objects = inst.annotations
        names = {cat.id: cat.name for cat in inst.categories}
        del inst
        if len({ann.id for ann in objects}) != len(objects):
            return "an annotation id used twice"
        people = _read(paths["person_keypoints"], "person_keypoints").annotations
        keypoints = {ann.id: ann.keypoints for ann in people}
        if len(keypoints) != len(people) or not {ann.image_id for ann in people} <= images.keys():
            return "a keypoint annotation id used twice or of an unknown image"
        del people
        captions = _read(paths["captions"], "captions").annotations
        return _join(images, objects, names, keypoints, captions, split, paths)
    except (OSError, msgspec.MsgspecError) as err:
        return str(err)
    except KeyError as err:
        return f"unknown image or category id {err}"


def _join(images, objects, names, keypoints, captions, split: str, paths: dict[str, Path]) -> dict[int, Scene]:
    """Scenes from the decoded records; raises KeyError on an annotation of an unknown image or category."""
    objects_of: dict[int, list[Instance]] = {image_id: [] for image_id in sorted(images)}
    person_ids = {cat_id for cat_id, name in names.items() if name == "person"}
    take_keypoints = keypoints.pop
    labelled = (0.0).__lt__  # v > 0 for a visibility v
    for ann in sorted(objects, key=_BY_ID):  # scenes list their instances in annotation-id order
        category = ann.category_id
        # keypoints belong to person annotations only (the contract of Instance.keypoints)
        if category in person_ids and (kps := take_keypoints(ann.id, None)) is not None:
            visibility = kps[2::3]
            # labelled: v > 0; counting the zeros is quicker and the same when no v is negative
            count = _JOINTS - visibility.count(0.0) if min(visibility) >= 0.0 else sum(map(labelled, visibility))
            instance = Instance(ann.id, names[category], ann.bbox, ann.iscrowd != 0, kps, count)
        else:
            instance = Instance(ann.id, names[category], ann.bbox, ann.iscrowd != 0, None, 0)
        objects_of[ann.image_id].append(instance)
    captions_of: dict[int, list[str]] = {image_id: [] for image_id in objects_of}
    for cap in captions:  # annotation-file order
        captions_of[cap.image_id].append(cap.caption)
    if keypoints:
        some = ", ".join(str(i) for i in list(keypoints)[:5])
        log.warning(
            "%s: %d keypoint annotations match no person annotation of %s and were ignored (ids %s)",
            paths["person_keypoints"].name,
            len(keypoints),
            paths["instances"].name,
            some,
        )
    scenes: dict[int, Scene] = {}
    for image_id, objs in objects_of.items():
        img = images[image_id]
        scenes[image_id] = Scene(
            image_id, img.file_name, split, img.width, img.height, tuple(captions_of[image_id]), tuple(objs)
        )
    return scenes
