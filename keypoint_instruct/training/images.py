"""Image loading and LLaVA-1.5's pad-to-square, shared by training and the benchmark; the training images checked.

Takes the ``images`` entries of dataset rows (a PIL image, ``{"path", "bytes"}`` or a path) and a COCO root; gives
RGB PIL images, padded to a square (:func:`image_transform` for ``Dataset.with_transform``), and checks before
training that every image referenced by path is there (:func:`check_images`).

LLaVA-1.5 expanded every image to a square filled with CLIP's mean colour before the vision tower's resize, so the
whole frame is kept. The stock CLIP processor instead resizes the short side and centre-crops, which on a 640x480
COCO image drops about 12% of the width on each side, often cutting the very people the keypoints describe.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from keypoint_instruct.errors import TrainingConfigError

logger = logging.getLogger(__name__)

CLIP_MEAN_RGB = (122, 116, 104)  # OpenAI CLIP's image mean (0.4815, 0.4578, 0.4082) in 8-bit RGB
MAX_MISSING_SHOWN = 3  # how many missing images, weights or odd rows one error names


def pad_to_square(image: Image.Image, fill: tuple[int, int, int] = CLIP_MEAN_RGB) -> Image.Image:
    """Centre ``image`` on a square canvas of its longer side, filled with ``fill``; square images come back as is."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def resolve_image(value: Any, coco_root: Path | str | None) -> Image.Image:
    """Turn one entry of a dataset's ``images`` column into an RGB PIL image.

    ``value`` is a PIL image (an ``Image()`` column that decodes), a dict ``{"path", "bytes"}`` (an
    ``Image(decode=False)`` column), or a plain path string. Bytes win over the path; a relative path is read under
    ``coco_root`` (the COCO root, since rows store ``"<split>/<file_name>"``).
    """
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, str | Path):
        data, path = None, str(value)
    else:
        raise TrainingConfigError(
            f"unsupported image entry of type {type(value).__name__}: expected a PIL image, a path, "
            'or a dict {"path": ..., "bytes": ...}'
        )
    if data:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    if not path:
        raise TrainingConfigError('image entry has neither bytes nor a path: expected {"path": ..., "bytes": ...}')
    file = Path(path)
    if not file.is_absolute():
        if coco_root is None:
            raise TrainingConfigError(
                f"image {path!r} is referenced by a relative path but no COCO root was given "
                "(pass --coco_root <COCO root>, the folder that holds <split>/<file_name>)"
            )
        file = Path(coco_root) / file
    if not file.is_file():
        raise TrainingConfigError(f"image not found: {file} (expected <coco_root>/<split>/<file_name>)")
    with Image.open(file) as image:
        return image.convert("RGB")


def image_transform(coco_root: str | Path | None, *, pad: bool = True) -> Callable[[dict], dict]:
    """A ``Dataset.with_transform`` function: ``images`` entries -> RGB PIL images, padded to square by default."""

    def transform(batch: dict) -> dict:
        images = []
        for row in batch["images"]:
            loaded = [resolve_image(value, coco_root) for value in row]
            images.append([pad_to_square(image) for image in loaded] if pad else loaded)
        return {"messages": batch["messages"], "images": images}

    return transform


def _image_entries(dataset) -> list[Any]:
    """Every entry of the ``images`` column without decoding any image (Arrow structs -> dicts)."""
    import pyarrow.compute as pc

    column = dataset.select_columns(["images"]).with_format("arrow")[:].column("images")
    return pc.list_flatten(column).to_pylist()


def check_images(dataset, coco_root: str | Path | None) -> int:
    """Raise before training when an image that rows reference by path is not under ``coco_root``.

    Returns the number of distinct image files checked (entries that embed bytes need no file).
    """
    paths = set()
    embedded = 0
    for entry in _image_entries(dataset):
        if isinstance(entry, dict) and entry.get("bytes"):
            embedded += 1
        elif isinstance(entry, dict) and entry.get("path"):
            paths.add(entry["path"])
        elif isinstance(entry, str):
            paths.add(entry)
    relative = sorted(p for p in paths if not Path(p).is_absolute())
    if relative and coco_root is None:
        raise TrainingConfigError(
            f"the dataset references {len(relative)} images by relative path (e.g. {relative[0]}): "
            "pass --coco_root <COCO root>, the folder that holds <split>/<file_name>"
        )
    root = Path(coco_root) if coco_root is not None else Path("/")
    missing = sorted(p for p in paths if not (root / p).is_file())
    if missing:
        shown = ", ".join(str(root / p) for p in missing[:MAX_MISSING_SHOWN])
        more = f" and {len(missing) - MAX_MISSING_SHOWN} more" if len(missing) > MAX_MISSING_SHOWN else ""
        raise TrainingConfigError(
            f"{len(missing)} of {len(paths)} images missing under coco_root {root}: {shown}{more}"
        )
    if paths:
        logger.info("all %d referenced image files found", len(paths))
    if embedded:
        logger.info("%d images embedded in the dataset (no image files needed)", embedded)
    return len(paths)
