"""Scene -> a picture like the paper's Fig. 1: the image with its annotations, and the context text beside it.

Boxes are solid rectangles labelled with their category; each labelled person's keypoints are joined by COCO's
skeleton. A visible keypoint (v = 2) is a filled green dot, a labelled but hidden one (v = 1) a hollow orange ring;
unlabelled keypoints (v = 0) are not drawn, nor are limbs that touch one. Crowd regions get a thin grey box.
"""

from __future__ import annotations

import logging
import textwrap
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.coco.keypoints import SKELETON
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

log = logging.getLogger(__name__)

VISIBLE = (40, 200, 60)
OCCLUDED = (255, 150, 30)
PERSON_BOX = (230, 40, 40)
CROWD_BOX = (150, 150, 150)
PANEL_BG = (250, 250, 247)
TEXT = (25, 25, 25)
MARGIN = 16


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A monospaced TrueType font (matplotlib ships DejaVu Sans Mono); Pillow's default font otherwise."""
    try:
        import matplotlib

        path = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSansMono.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _box_colour(inst: Instance) -> tuple[int, int, int]:
    if inst.iscrowd:
        return CROWD_BOX
    if inst.category == "person":
        return PERSON_BOX
    crc = zlib.crc32(inst.category.encode())
    return (40 + crc % 140, 40 + (crc >> 8) % 140, 90 + (crc >> 16) % 140)


def draw_annotations(image: Image.Image, scene: Scene) -> Image.Image:
    """A copy of ``image`` with the boxes, skeletons and keypoints of ``scene`` drawn on it."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    scale = max(out.width / scene.width, out.height / scene.height)  # the JPEG may be resized
    unit = max(2, round(min(out.size) / 160))
    label_font = _font(max(11, 4 * unit))
    for inst in scene.instances:
        x, y, w, h = (v * scale for v in inst.bbox)
        colour = _box_colour(inst)
        pen.rectangle([x, y, x + w, y + h], outline=colour, width=1 if inst.iscrowd else unit)
        if not inst.iscrowd:
            left, top, right, bottom = pen.textbbox((x, y), inst.category, font=label_font)
            pen.rectangle([left, top, right + 2 * unit, bottom + unit], fill=colour)
            pen.text((x + unit, y), inst.category, fill=(255, 255, 255), font=label_font)
    for inst in scene.instances:
        if inst.keypoints is None or inst.iscrowd:
            continue
        pts = [
            (inst.keypoints[i] * scale, inst.keypoints[i + 1] * scale, inst.keypoints[i + 2]) for i in range(0, 51, 3)
        ]
        for a, b in SKELETON:
            (xa, ya, va), (xb, yb, vb) = pts[a - 1], pts[b - 1]
            if va > 0 and vb > 0:
                colour = VISIBLE if va == 2 and vb == 2 else OCCLUDED
                pen.line([(xa, ya), (xb, yb)], fill=colour, width=unit)
        r = 1.6 * unit
        for px, py, v in pts:
            if v == 2:
                pen.ellipse([px - r, py - r, px + r, py + r], fill=VISIBLE, outline=(0, 90, 0))
            elif v == 1:
                pen.ellipse([px - r, py - r, px + r, py + r], outline=OCCLUDED, width=max(1, unit // 2 + 1))
    return out


def _wrap(context: str, columns: int) -> list[str]:
    lines: list[str] = []
    for line in context.splitlines():
        lines += textwrap.wrap(line, columns, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return lines


def render_figure(image: Image.Image, scene: Scene, context: str, *, panel_width: int = 760) -> Image.Image:
    """The annotated image on the left, the wrapped context text on the right (never smaller than the image)."""
    annotated = draw_annotations(image, scene)
    font = _font(14)
    char_w = max(1.0, font.getlength("0"))
    line_h = int(font.getbbox("Ay")[3] * 1.35) + 1
    columns = max(20, int((panel_width - 2 * MARGIN) / char_w))
    lines = _wrap(context, columns)
    legend = ["", "green dot: keypoint visible (v=2)", "orange ring: labelled, not visible (v=1)"]
    text_h = 2 * MARGIN + line_h * (len(lines) + len(legend))
    canvas = Image.new("RGB", (annotated.width + panel_width, max(annotated.height, text_h)), PANEL_BG)
    canvas.paste(annotated, (0, 0))
    pen = ImageDraw.Draw(canvas)
    x0, y = annotated.width + MARGIN, MARGIN
    for line in lines:
        pen.text((x0, y), line, fill=TEXT, font=font)
        y += line_h
    for line, colour in zip(legend, (TEXT, VISIBLE, OCCLUDED), strict=True):
        pen.text((x0, y), line, fill=colour, font=font)
        y += line_h
    return canvas


def save_figure(image_file: Path, scene: Scene, context: str, out: Path) -> Path:
    """Read ``image_file``, render the figure of ``scene`` and write it to ``out`` as PNG."""
    if not image_file.is_file():
        raise InputNotFoundError(f"image file {image_file} of image id {scene.image_id} does not exist")
    try:
        with Image.open(image_file) as image:
            image.load()
            figure = render_figure(image, scene, context)
    except (UnidentifiedImageError, OSError) as err:
        raise CocoFormatError(f"image file {image_file} cannot be read as an image ({err})") from err
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(out, format="PNG")
    log.debug("wrote %s (%dx%d)", out, figure.width, figure.height)
    return out
