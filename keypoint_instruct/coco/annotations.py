"""COCO annotation files -> :class:`Scene` objects, one per image.

The three files of a split (``annotations/{captions,instances,person_keypoints}_<split>.json``) are decoded by a
typed msgspec decoder that keeps only the fields we use; the segmentation polygons, which are most of the bytes,
are skipped without being built. The result is handed to ``pycocotools.coco.COCO``'s index, and joined per image.
Schema problems raise :class:`~keypoint_instruct.errors.CocoFormatError` naming the file and the annotation or
image id; this module formats nothing (see :mod:`keypoint_instruct.coco.context`).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import msgspec

from keypoint_instruct.coco.checks import check_captions, check_images, check_instances, not_this_task
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

log = logging.getLogger(__name__)

ANNOTATION_KINDS = ("captions", "instances", "person_keypoints")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")  # val2014, train2017, ...: it becomes part of file and folder names


@dataclass(frozen=True, slots=True)
class Instance:
    """One annotated object of an image (a person, a crowd region, a pair of skis)."""

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


# --- typed decoding: only these fields are materialised, everything else is skipped --------------------------


class _Image(TypedDict):
    id: int
    file_name: str
    width: int
    height: int


class _Category(TypedDict):
    id: int
    name: str
    keypoints: NotRequired[list[str]]  # keypoint names: only person_keypoints files have them


class _Caption(TypedDict):
    id: int
    image_id: int
    caption: str


class _Instance(TypedDict):
    id: int
    image_id: int
    category_id: int
    bbox: list[float]
    iscrowd: NotRequired[int]
    keypoints: NotRequired[list[float]]


class _InstancesFile(msgspec.Struct):
    images: list[_Image]
    annotations: list[_Instance]
    categories: list[_Category]


class _KeypointsFile(msgspec.Struct):  # the images repeat the instances file's: skipped
    annotations: list[_Instance]


class _CaptionAnnotations(msgspec.Struct):
    annotations: list[_Caption]


class _AnnotationIds(msgspec.Struct):  # second pass, only to name the annotation behind a type error
    annotations: list[dict[str, Any]]


class _Sniff(msgspec.Struct):  # second pass, only to name the COCO task of a file that is not the one expected
    annotations: list[msgspec.Raw] = []
    categories: list[dict[str, Any]] = []


_DECODERS = {
    "captions": msgspec.json.Decoder(_CaptionAnnotations),
    "instances": msgspec.json.Decoder(_InstancesFile),
    "person_keypoints": msgspec.json.Decoder(_KeypointsFile),
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


_ARCHIVES = {
    b"\x1f\x8b": "gzip-compressed: decompress it (gunzip) first",
    b"PK\x03\x04": "a zip archive: extract it first",
}


def _decode(path: Path, kind: str):
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CocoFormatError(f"{path}: cannot read annotation file ({err.strerror or err})") from err
    for magic, what in _ARCHIVES.items():
        if data.startswith(magic):
            raise CocoFormatError(f"{path}: the file is {what}")
    try:
        return _DECODERS[kind].decode(data)
    except msgspec.ValidationError as err:
        task = _task_of(data)
        if task and task != kind:
            raise CocoFormatError(f"{path}: {not_this_task(task, kind)} ({err})") from err
        raise CocoFormatError(f"{path}: {_locate(data, str(err))}") from err
    except msgspec.DecodeError as err:
        raise CocoFormatError(f"{path}: not valid JSON ({err})") from err


def _task_of(data: bytes) -> str | None:
    """Which COCO task a file holds, judged by its first annotation and its categories; None when unclear."""
    try:
        sniff = msgspec.json.decode(data, type=_Sniff)
        first = msgspec.json.decode(sniff.annotations[0]) if sniff.annotations else {}
    except msgspec.MsgspecError:
        return None
    if not isinstance(first, dict):
        return None
    if "caption" in first:
        return "captions"
    if "segments_info" in first:
        return "panoptic"
    if "keypoints" in first or (
        sniff.categories and all(isinstance(c, dict) and "keypoints" in c for c in sniff.categories)
    ):
        return "person_keypoints"
    return "instances" if "category_id" in first else None


def _locate(data: bytes, message: str) -> str:
    """Turn msgspec's ``... - at `$.annotations[12].bbox``` into a message that names the annotation id."""
    match = re.search(r"\$\.annotations\[(\d+)\]", message)
    if not match:
        return f"not in COCO's schema: {message}"
    try:
        ann = msgspec.json.decode(data, type=_AnnotationIds).annotations[int(match.group(1))]
        who = f"annotation id {ann.get('id')!r}"
    except (msgspec.MsgspecError, IndexError):
        who = f"annotation #{match.group(1)}"
    return f"{who} is not in COCO's schema: {message}"


def _index(dataset: dict[str, Any]):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints; stdout may carry our JSON lines
        coco.createIndex()
    return coco


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic garbage collector: decoding creates millions of dicts and lists but no cycles, and
    collections over that growing heap would otherwise take most of the loading time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_scenes(coco_root: str | Path, split: str) -> dict[int, Scene]:
    """Load one split of a COCO tree into scenes keyed (and ordered) by image id."""
    with _no_gc():
        return _load_scenes(Path(coco_root), split)


def _load_scenes(root: Path, split: str) -> dict[int, Scene]:
    _check_split(root, split)
    paths = {kind: annotation_file(root, split, kind) for kind in ANNOTATION_KINDS}

    inst = _decode(paths["instances"], "instances")
    if inst.categories and all("keypoints" in cat for cat in inst.categories):  # would load, minus every object
        raise CocoFormatError(
            f"{paths['instances']}: {not_this_task('person_keypoints', 'instances')} (its categories list keypoint "
            "names; the instances file has every object category)"
        )
    check_images(paths["instances"], inst.images)
    image_ids = {img["id"] for img in inst.images}
    check_instances(paths["instances"], inst.annotations, image_ids, paths["instances"], keypoints=False)
    categories = {cat["id"]: cat["name"] for cat in inst.categories}
    person_ids = {cat_id for cat_id, name in categories.items() if name == "person"}
    for ann in inst.annotations:
        if ann["category_id"] not in categories:
            raise CocoFormatError(
                f"{paths['instances']}: annotation id {ann['id']} has unknown category id {ann['category_id']}"
            )
    instances = _index({"images": inst.images, "annotations": inst.annotations, "categories": inst.categories})
    del inst

    kps = _decode(paths["person_keypoints"], "person_keypoints")
    check_instances(paths["person_keypoints"], kps.annotations, image_ids, paths["instances"], keypoints=True)
    keypoints_by_id = {ann["id"]: ann["keypoints"] for ann in kps.annotations}
    del kps

    caps = _decode(paths["captions"], "captions")
    check_captions(paths["captions"], caps.annotations, image_ids, paths["instances"])
    captions = _index({"images": [], "annotations": caps.annotations})  # its images repeat the instances file's
    del caps

    scenes: dict[int, Scene] = {}
    by_id = operator.itemgetter("id")
    for image_id in sorted(instances.imgs):
        img = instances.imgs[image_id]
        objs = []
        for ann in sorted(instances.imgToAnns.get(image_id, ()), key=by_id):
            # keypoints belong to person annotations only (the contract of Instance.keypoints)
            kp = keypoints_by_id.pop(ann["id"], None) if ann["category_id"] in person_ids else None
            objs.append(
                Instance(
                    id=ann["id"],
                    category=categories[ann["category_id"]],
                    bbox=tuple(ann["bbox"]),  # msgspec decoded floats
                    iscrowd=bool(ann.get("iscrowd", 0)),
                    keypoints=None if kp is None else tuple(kp),
                    num_keypoints=0 if kp is None else len([v for v in kp[2::3] if v > 0]),
                )
            )
        scenes[image_id] = Scene(
            image_id=image_id,
            file_name=img["file_name"],
            coco_split=split,
            width=img["width"],
            height=img["height"],
            captions=tuple([c["caption"] for c in captions.imgToAnns.get(image_id, ())]),
            instances=tuple(objs),
        )
    if keypoints_by_id:
        some = ", ".join(str(i) for i in list(keypoints_by_id)[:5])
        log.warning(
            "%s: %d keypoint annotations match no person annotation of %s and were ignored (ids %s)",
            paths["person_keypoints"].name,
            len(keypoints_by_id),
            paths["instances"].name,
            some,
        )
    log.debug("loaded %d images of %s from %s", len(scenes), split, root)
    return scenes
