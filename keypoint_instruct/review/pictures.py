"""The pictures of a review folder: each image with its boxes and skeletons as ``show`` draws them, as a JPEG.

Drawing is :func:`keypoint_instruct.coco.render.draw_annotations` itself, so the page shows what ``show`` shows. An
image larger than :data:`MAX_SIDE` is scaled down first (the drawing follows the scale), and the JPEG is written at
quality :data:`QUALITY`: a COCO image of 640 x 480 becomes a file of about 60-120 KB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from keypoint_instruct.coco.annotations import Scene, image_path
from keypoint_instruct.coco.render import draw_annotations

logger = logging.getLogger(__name__)

MAX_SIDE = 800
QUALITY = 85
FOLDER = "images"


@dataclass(frozen=True)
class Picture:
    """A written picture (``src`` relative to the page, its size), or why there is none (``missing``)."""

    src: str | None
    width: int = 0
    height: int = 0
    missing: str | None = None


def write_picture(coco_root: str | Path, scene: Scene, out_dir: Path) -> Picture:
    """Draw ``scene``'s annotations on its image into ``out_dir/images/<image_id>.jpg``."""
    source = image_path(coco_root, scene)
    name = f"{FOLDER}/{scene.image_id}.jpg"
    try:
        with Image.open(source) as image:
            image.load()
            image = image.convert("RGB")
    except FileNotFoundError:
        return Picture(None, missing=f"image file {source} not found")
    except (UnidentifiedImageError, OSError) as err:
        return Picture(None, missing=f"image file {source} cannot be read ({err})")
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    drawn = draw_annotations(image, scene)
    target = out_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    drawn.save(target, format="JPEG", quality=QUALITY, optimize=True)
    return Picture(name, drawn.width, drawn.height)
