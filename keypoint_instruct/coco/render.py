"""Scene -> a picture like the paper's Fig. 1: the image with its annotations, and the context text beside it.

Each person's box is labelled "Person N", numbered as the pose notes and the context's person lines number them
(non-crowd persons in annotation order), each person in a colour of their own; other objects' boxes are labelled
with their category, crowd regions get a thin grey box. A person's keypoints are joined by COCO's skeleton, the
person's own left limbs in blue and right limbs in orange (the colours stay distinct for colour-blind readers;
limbs across the body, shoulders to shoulders and hips to hips, in white), each line on a dark outline so it shows
on any background. A visible keypoint (v = 2) is a filled dot, a labelled but hidden one (v = 1) a hollow ring and
its limbs are dashed; unlabelled keypoints (v = 0) are not drawn, nor are limbs that touch one. A legend under the
image says so. Labels are placed where they overlap no other label (above the box, else inside it).
"""

from __future__ import annotations

import logging
import math
import textwrap
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.coco.geometry import person_instances
from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES, SKELETON
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

log = logging.getLogger(__name__)

LEFT = (40, 140, 255)  # the person's own left side
RIGHT = (255, 150, 20)  # the person's own right side
ACROSS = (245, 245, 245)  # limbs joining the two sides (shoulders, hips, eyes)
OUTLINE = (15, 15, 15)
PERSON_BOX = (225, 30, 60)  # Person 1; the others take the next colours of PERSON_BOXES
PERSON_BOXES = (PERSON_BOX, (0, 160, 110), (120, 50, 200), (150, 95, 30), (255, 60, 200), (0, 130, 160))
CROWD_BOX = (150, 150, 150)
PANEL_BG = (250, 250, 247)
TEXT = (25, 25, 25)
MARGIN = 16
Rect = tuple[float, float, float, float]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A monospaced TrueType font (matplotlib ships DejaVu Sans Mono); Pillow's default font otherwise."""
    try:
        import matplotlib

        path = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSansMono.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _category_colour(category: str) -> tuple[int, int, int]:
    crc = zlib.crc32(category.encode())
    return (40 + crc % 140, 40 + (crc >> 8) % 140, 90 + (crc >> 16) % 140)


def _ink(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``fill``."""
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def _side(index: int) -> str | None:
    name = KEYPOINT_NAMES[index]
    return "left" if name.startswith("left") else "right" if name.startswith("right") else None


def limb_colour(a: int, b: int) -> tuple[int, int, int]:
    """The colour of the limb between keypoints ``a`` and ``b`` (0-based): its side's, or ACROSS between sides."""
    sides = {_side(a), _side(b)} - {None}
    return ACROSS if len(sides) != 1 else LEFT if sides == {"left"} else RIGHT


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(size: tuple[float, float], box: Rect, bounds: tuple[int, int], taken: list[Rect]) -> Rect:
    """Where a label of ``size`` goes for ``box``: above its top-left corner, else inside it, then the right-hand
    corners and the bottom, the first spot that overlaps no label in ``taken`` (kept inside the image)."""
    w, h = size
    x0, y0, x1, y1 = box
    spots = [(x0, y0 - h), (x0, y0), (x1 - w, y0 - h), (x1 - w, y0), (x0, y1 - h), (x0, y1), (x1 - w, y1 - h)]
    rects = []
    for x, y in spots:
        x = min(max(x, 0.0), max(bounds[0] - w, 0.0))
        y = min(max(y, 0.0), max(bounds[1] - h, 0.0))
        rects.append((x, y, x + w, y + h))
    return next((r for r in rects if not any(_overlaps(r, t) for t in taken)), rects[0])


def _dashed(pen: ImageDraw.ImageDraw, a, b, fill, width: int, dash: float) -> None:
    length = math.dist(a, b)
    steps = max(1, int(length // dash))
    for i in range(0, steps, 2):
        t0, t1 = i / steps, min(1.0, (i + 1) / steps)
        start = (a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0)
        end = (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)
        pen.line([start, end], fill=fill, width=width)


def _limb(pen: ImageDraw.ImageDraw, a, b, colour, unit: int, hidden: bool) -> None:
    """A limb on a dark outline; dashed when one of its joints is hidden."""
    for fill, width in ((OUTLINE, unit + 2), (colour, unit)):
        if hidden:
            _dashed(pen, a, b, fill, width, 3 * unit)
        else:
            pen.line([a, b], fill=fill, width=width)


def _skeleton(pen: ImageDraw.ImageDraw, inst: Instance, scale: float, unit: int) -> None:
    pts = [(inst.keypoints[i] * scale, inst.keypoints[i + 1] * scale, inst.keypoints[i + 2]) for i in range(0, 51, 3)]
    for a, b in SKELETON:
        (xa, ya, va), (xb, yb, vb) = pts[a - 1], pts[b - 1]
        if va > 0 and vb > 0:
            _limb(pen, (xa, ya), (xb, yb), limb_colour(a - 1, b - 1), unit, hidden=va == 1 or vb == 1)
    r = 1.6 * unit
    for index, (px, py, v) in enumerate(pts):
        side = _side(index)
        colour = LEFT if side == "left" else RIGHT if side == "right" else ACROSS
        if v == 2:
            pen.ellipse([px - r, py - r, px + r, py + r], fill=colour, outline=OUTLINE, width=max(1, unit // 2))
        elif v == 1:
            pen.ellipse([px - r - 1, py - r - 1, px + r + 1, py + r + 1], outline=OUTLINE, width=max(1, unit // 2))
            pen.ellipse([px - r, py - r, px + r, py + r], outline=colour, width=max(1, unit // 2 + 1))


def _top_joint(inst: Instance) -> tuple[float, float] | None:
    """The labelled keypoint nearest the top of the image, or None."""
    kps = inst.keypoints or ()
    labelled = [(kps[i + 1], kps[i]) for i in range(0, len(kps) - 2, 3) if kps[i + 2] > 0]
    return (min(labelled)[1], min(labelled)[0]) if labelled else None


def _labels(scene: Scene) -> dict[int, tuple[str, tuple[int, int, int]]]:
    """Instance id -> (label, colour): "Person N" as the pose notes number people, else the category."""
    out = {}
    for number, inst in enumerate(person_instances(scene), start=1):
        out[inst.id] = (f"Person {number}", PERSON_BOXES[(number - 1) % len(PERSON_BOXES)])
    for inst in scene.instances:
        if inst.id not in out and not inst.iscrowd:
            out[inst.id] = (inst.category, _category_colour(inst.category))
    return out


def draw_annotations(image: Image.Image, scene: Scene) -> Image.Image:
    """A copy of ``image`` with the boxes (labelled), skeletons and keypoints of ``scene`` drawn on it."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    scale = max(out.width / scene.width, out.height / scene.height)  # the JPEG may be resized
    unit = max(2, round(min(out.size) / 160))
    label_font = _font(max(11, 4 * unit))
    labels = _labels(scene)
    boxes = {inst.id: tuple(v * scale for v in inst.bbox) for inst in scene.instances}
    for inst in scene.instances:
        x, y, w, h = boxes[inst.id]
        colour = CROWD_BOX if inst.iscrowd else labels[inst.id][1]
        pen.rectangle([x, y, x + w, y + h], outline=colour, width=1 if inst.iscrowd else unit)
    for inst in scene.instances:
        if inst.keypoints is not None and not inst.iscrowd:
            _skeleton(pen, inst, scale, unit)
    tag_font = _font(max(10, 3 * unit))
    for inst in person_instances(scene):  # the number by the skeleton's top joint: overlapping people stay apart
        top = _top_joint(inst)
        if top is not None:
            text, colour = labels[inst.id]
            at = (top[0] * scale - 4 * unit, top[1] * scale - 4 * unit)
            _tag(pen, text.split()[-1], at, colour, tag_font, unit, out.size)
    taken: list[Rect] = []
    for inst_id, (text, colour) in labels.items():  # persons first: their labels get the first spots
        x, y, w, h = boxes[inst_id]
        left, top, right, bottom = pen.textbbox((0, 0), text, font=label_font)
        size = (right - left + 2 * unit, bottom - top + 2 * unit)
        spot = _place(size, (x, y, x + w, y + h), out.size, taken)
        taken.append(spot)
        pen.rectangle(spot, fill=colour, outline=OUTLINE)
        pen.text((spot[0] + unit - left, spot[1] + unit - top), text, fill=_ink(colour), font=label_font)
    return out


LEGEND_ROWS = (
    (LEFT, "line", "person's own left"),
    (RIGHT, "line", "person's own right"),
    (ACROSS, "line", "across the body"),
    (LEFT, "dot", "visible joint (v=2)"),
    (LEFT, "ring", "hidden joint (v=1)"),
    (PERSON_BOX, "tag", "Person N of the notes"),
)


def draw_legend(width: int, *, unit: int = 3) -> Image.Image:
    """A strip saying what the colours and marks mean, ``width`` pixels wide (wider where one column of it needs
    more), in two columns where they fit."""
    font = _font(max(12, 4 * unit))
    line_h = int(font.getbbox("Ay")[3] * 1.5) + 2
    mark_w = 12 * unit
    cell_w = int(mark_w + max(font.getlength(text) for _, _, text in LEGEND_ROWS) + MARGIN)
    columns = 2 if 2 * cell_w + MARGIN <= width else 1
    per_column = -(-len(LEGEND_ROWS) // columns)
    strip = Image.new("RGB", (max(width, cell_w + MARGIN), MARGIN + line_h * per_column), (55, 55, 55))
    pen = ImageDraw.Draw(strip)
    r = 1.6 * unit
    for i, (colour, mark, text) in enumerate(LEGEND_ROWS):
        x = MARGIN + (i // per_column) * (cell_w + MARGIN)
        mid = MARGIN / 2 + (i % per_column) * line_h + line_h / 2
        if mark in ("line", "ring"):
            _limb(pen, (x, mid), (x + 8 * unit, mid), colour, unit, hidden=mark == "ring")
        if mark in ("dot", "ring"):
            end = x + 8 * unit
            pen.ellipse([end - r - 1, mid - r - 1, end + r + 1, mid + r + 1], outline=OUTLINE, width=max(1, unit // 2))
            if mark == "dot":
                pen.ellipse([end - r, mid - r, end + r, mid + r], fill=colour, outline=OUTLINE)
            else:
                pen.ellipse([end - r, mid - r, end + r, mid + r], outline=colour, width=max(1, unit // 2 + 1))
        if mark == "tag":
            _tag(pen, "1", (x + 4 * unit, mid), colour, _font(max(10, 3 * unit)), unit, strip.size)
        pen.text((x + mark_w, mid), text, fill=(255, 255, 255), font=font, anchor="lm")
    return strip


def _tag(pen: ImageDraw.ImageDraw, text: str, centre, colour, font, unit: int, bounds) -> None:
    """A small filled box holding ``text`` centred on ``centre`` (kept inside ``bounds``)."""
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font, anchor="mm")
    half_w, half_h = (right - left) / 2 + unit, (bottom - top) / 2 + unit
    cx = min(max(centre[0], half_w), bounds[0] - half_w)
    cy = min(max(centre[1], half_h), bounds[1] - half_h)
    pen.rectangle([cx - half_w, cy - half_h, cx + half_w, cy + half_h], fill=colour, outline=OUTLINE)
    pen.text((cx, cy), text, fill=_ink(colour), font=font, anchor="mm")


def _wrap(context: str, columns: int) -> list[str]:
    lines: list[str] = []
    for line in context.splitlines():
        lines += textwrap.wrap(line, columns, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return lines


def render_figure(image: Image.Image, scene: Scene, context: str, *, panel_width: int = 760) -> Image.Image:
    """The annotated image with the legend under it on the left, the wrapped context text on the right."""
    annotated = draw_annotations(image, scene)
    legend = draw_legend(annotated.width, unit=max(2, round(min(annotated.size) / 160)))
    left_w = max(annotated.width, legend.width)  # a narrow image: its column is as wide as the legend
    font = _font(14)
    char_w = max(1.0, font.getlength("0"))
    line_h = int(font.getbbox("Ay")[3] * 1.35) + 1
    columns = max(20, int((panel_width - 2 * MARGIN) / char_w))
    lines = _wrap(context, columns)
    text_h = 2 * MARGIN + line_h * len(lines)
    left_h = annotated.height + legend.height
    canvas = Image.new("RGB", (left_w + panel_width, max(left_h, text_h)), PANEL_BG)
    canvas.paste(annotated, (0, 0))
    canvas.paste(legend, (0, annotated.height))
    pen = ImageDraw.Draw(canvas)
    x0, y = left_w + MARGIN, MARGIN
    for line in lines:
        pen.text((x0, y), line, fill=TEXT, font=font)
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
