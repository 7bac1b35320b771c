"""Which images a COCO split holds, read cheaply: the image ids of an annotation file, nothing else.

COCO's image ids are shared across the years: the 2017 training split is the 2014 training split plus the 2014
validation images that did not go to val2017, under the same ids. So an image of val2014 is a training image when
its id is listed by ``train2017`` (about 35,500 of val2014's 40,504 images are), and a benchmark drawn from val2014
must look at the training files under the same root. :func:`split_image_ids` reads only the ``images`` list of one
annotation file with a typed decoder that skips the annotations without building them: the captions file when there
is one (the smallest: 89 MB for train2017 against 447 MB of instances), else the keypoints or instances file; all
three list every image of the split.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import msgspec

from keypoint_instruct.coco.annotations import annotation_file
from keypoint_instruct.errors import CocoFormatError

# COCO's training splits: their images must never be benchmark images (and their ids cover the other years').
TRAINING_SPLITS = ("train2014", "train2017")
_KIND_ORDER = ("captions", "person_keypoints", "instances")  # smallest file first


class _ImageId(msgspec.Struct):
    id: int


class _ImageList(msgspec.Struct):
    images: list[_ImageId]


_DECODER = msgspec.json.Decoder(_ImageList)


@dataclass(frozen=True)
class SplitIds:
    """The image ids of one split and the file they were read from."""

    split: str
    path: Path
    ids: frozenset[int]


def read_image_ids(path: Path) -> frozenset[int]:
    """The ids of the ``images`` list of a COCO annotation file (memory-mapped; annotations skipped unbuilt)."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:2] == b"\x1f\x8b" or data[:4] == b"PK\x03\x04":
                raise CocoFormatError(f"{path}: the file is compressed: extract it first")
            images = _DECODER.decode(data).images
    except (OSError, ValueError) as err:
        if isinstance(err, CocoFormatError):
            raise
        raise CocoFormatError(f"{path}: cannot read its image list ({err})") from err
    except msgspec.MsgspecError as err:
        raise CocoFormatError(f"{path}: not a COCO annotation file with an images list ({err})") from err
    return frozenset(image.id for image in images)


def split_image_ids(coco_root: str | Path, split: str) -> SplitIds | None:
    """The image ids of ``split`` under ``coco_root``, or None when the root has no annotation file for it."""
    for kind in _KIND_ORDER:
        path = annotation_file(coco_root, split, kind)
        if path.is_file():
            return SplitIds(split, path, read_image_ids(path))
    return None


def training_split_ids(coco_root: str | Path, *, besides: str | None = None) -> list[SplitIds]:
    """The image ids of each COCO training split with an annotation file under ``coco_root`` (``besides`` left out)."""
    found = [split_image_ids(coco_root, split) for split in TRAINING_SPLITS if split != besides]
    return [ids for ids in found if ids is not None]
