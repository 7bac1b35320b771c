"""Checks of decoded COCO annotation files: each problem is one error naming the file and the image or annotation id.

Used by :mod:`keypoint_instruct.coco.annotations` after decoding; msgspec has already enforced field types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.errors import CocoFormatError


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
