"""What is wrong with a split's annotation files: the first problem, as one error naming the file and the id.

:mod:`keypoint_instruct.coco.annotations` loads a split with strict types and cheap whole-file checks; when any of
them fails it calls :func:`find_problem`, which reads the files again the careful way (forgiving types, then every
check in file order) and raises the :class:`~keypoint_instruct.errors.CocoFormatError` that names the problem.
Nothing here runs on files that load cleanly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import msgspec

from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.errors import CocoFormatError

# --- decoding with the types of COCO's schema, so that a type error can be traced to its annotation ------------


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
_ARCHIVES = {
    b"\x1f\x8b": "gzip-compressed: decompress it (gunzip) first",
    b"PK\x03\x04": "a zip archive: extract it first",
}


def find_problem(paths: dict[str, Path]) -> None:
    """Raise the error naming the first problem of the split's files (``paths``: kind -> file), in the order of
    instances (decode, categories, images, annotations), person_keypoints, captions. Returns if there is none."""
    inst = _decode(paths["instances"], "instances")
    if inst.categories and all("keypoints" in cat for cat in inst.categories):  # would load, minus every object
        raise CocoFormatError(
            f"{paths['instances']}: {not_this_task('person_keypoints', 'instances')} (its categories list keypoint "
            "names; the instances file has every object category)"
        )
    check_images(paths["instances"], inst.images)
    image_ids = {img["id"] for img in inst.images}
    check_instances(paths["instances"], inst.annotations, image_ids, paths["instances"], keypoints=False)
    categories = {cat["id"] for cat in inst.categories}
    for ann in inst.annotations:
        if ann["category_id"] not in categories:
            raise CocoFormatError(
                f"{paths['instances']}: annotation id {ann['id']} has unknown category id {ann['category_id']}"
            )
    del inst
    kps = _decode(paths["person_keypoints"], "person_keypoints")
    check_instances(paths["person_keypoints"], kps.annotations, image_ids, paths["instances"], keypoints=True)
    del kps
    caps = _decode(paths["captions"], "captions")
    check_captions(paths["captions"], caps.annotations, image_ids, paths["instances"])


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


# --- checks of decoded files --------------------------------------------------------------------------------


def not_this_task(task: str, kind: str) -> str:
    article = "an" if task[0] in "aeiou" else "a"
    return f"this looks like {article} {task} file, not the {kind} file of the split"


def check_images(path: Path, images: list[dict[str, Any]]) -> None:
    seen: dict[int, dict[str, Any]] = {}
    for img in images:
        if img["width"] <= 0 or img["height"] <= 0:
            raise CocoFormatError(
                f"{path}: image id {img['id']} has width {img['width']} and height {img['height']} "
                "(expected positive pixel sizes)"
            )
        first = seen.setdefault(img["id"], img)
        if first != img:  # listed twice alike is harmless; two different records leave the size ambiguous
            raise CocoFormatError(
                f"{path}: image id {img['id']} is listed twice with different records ({first['file_name']} "
                f"{first['width']}x{first['height']} and {img['file_name']} {img['width']}x{img['height']})"
            )


def unknown_image(path: Path, ann: dict[str, Any], images_file: Path) -> CocoFormatError:
    return CocoFormatError(
        f"{path}: annotation id {ann['id']} points at unknown image id {ann['image_id']} "
        f"(not among the images of {images_file.name})"
    )


def check_instances(
    path: Path, annotations: list[dict[str, Any]], image_ids: set[int], images_file: Path, keypoints: bool
) -> None:
    # msgspec already enforced the field types and required fields, and JSON numbers are finite.
    expected = 3 * len(KEYPOINT_NAMES)
    seen: set[int] = set()
    for ann in annotations:
        if ann["id"] in seen:  # the ids join person_keypoints to instances: a repeat lists an object twice
            raise CocoFormatError(
                f"{path}: annotation id {ann['id']} is used twice (annotation ids must be unique within a file)"
            )
        seen.add(ann["id"])
        if ann["image_id"] not in image_ids:
            raise unknown_image(path, ann, images_file)
        if len(ann["bbox"]) != 4:
            raise CocoFormatError(
                f"{path}: annotation id {ann['id']} has a bbox of {len(ann['bbox'])} numbers "
                "(expected 4: x, y, width, height)"
            )
        if ann["bbox"][2] < 0 or ann["bbox"][3] < 0:
            raise CocoFormatError(
                f"{path}: annotation id {ann['id']} has a bbox {ann['bbox']} with a negative width or height "
                "(expected x, y, width, height with width and height >= 0)"
            )
        if keypoints and len(ann.get("keypoints") or ()) != expected:
            kps = ann.get("keypoints")
            if kps is None and not any("keypoints" in a for a in annotations):
                wrong = not_this_task("instances", "person_keypoints")
                raise CocoFormatError(f"{path}: {wrong} (no annotation has keypoints)")
            got = "no keypoints" if kps is None else f"{len(kps)} keypoint numbers"
            raise CocoFormatError(
                f"{path}: annotation id {ann['id']} has {got} (expected 51: x, y, visibility for 17 keypoints)"
            )


def check_captions(path: Path, annotations: list[dict[str, Any]], image_ids: set[int], images_file: Path) -> None:
    for ann in annotations:
        if ann["image_id"] not in image_ids:
            raise unknown_image(path, ann, images_file)
