"""Image loading and LLaVA-1.5's pad-to-square, shared by training and the benchmark.

LLaVA-1.5 expanded every image to a square filled with CLIP's mean colour before the vision tower's resize, so the
whole frame is kept. The stock CLIP processor instead resizes the short side and centre-crops, which on a 640x480
COCO image drops about 12% of the width on each side, often cutting the very people the keypoints describe.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from PIL import Image

from keypoint_instruct.errors import TrainingConfigError

logger = logging.getLogger(__name__)

CLIP_MEAN_RGB = (122, 116, 104)  # OpenAI CLIP's image mean (0.4815, 0.4578, 0.4082) in 8-bit RGB


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
