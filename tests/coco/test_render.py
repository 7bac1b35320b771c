"""The Fig. 1-style picture: what is drawn where, and the size of the figure."""

from __future__ import annotations

import pytest
from PIL import Image

from keypoint_instruct.coco.annotations import Instance, Scene, load_scenes
from keypoint_instruct.coco.context import format_context
from keypoint_instruct.coco.render import OCCLUDED, PERSON_BOX, VISIBLE, draw_annotations, render_figure, save_figure
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

GREY = (128, 128, 128)


def _scene() -> Scene:
    kps = [0.0] * 51
    kps[0:3] = [50.0, 50.0, 2.0]  # nose, visible
    kps[3:6] = [150.0, 80.0, 0.0]  # left eye, unlabelled: neither it nor the nose-eye limb is drawn
    kps[6:9] = [50.0, 120.0, 1.0]  # right eye, hidden: the nose-right eye limb is drawn in the hidden colour
    kps[9:12] = [120.0, 50.0, 1.0]  # left ear, hidden, with no labelled neighbour: a lone ring
    person = Instance(1, "person", (20.0, 20.0, 160.0, 140.0), False, tuple(kps), 3)
    return Scene(7, "x.jpg", "val2014", 200, 180, ("A person.",), (person,))


def test_visible_hidden_and_unlabelled_keypoints_are_drawn_differently():
    drawn = draw_annotations(Image.new("RGB", (200, 180), GREY), _scene())
    assert drawn.getpixel((50, 50)) == VISIBLE  # filled dot
    assert drawn.getpixel((120, 50)) == GREY  # a ring: hollow in the middle ...
    assert OCCLUDED in [drawn.getpixel((120 + dx, 50)) for dx in range(-6, 7)]  # ... orange around it
    assert drawn.getpixel((150, 80)) == GREY  # unlabelled: nothing
    assert drawn.getpixel((100, 65)) == GREY  # no limb towards it
    assert drawn.getpixel((50, 85)) == OCCLUDED  # limb with a hidden end
    assert drawn.getpixel((20, 100)) == PERSON_BOX  # the box's left edge


def test_figure_is_at_least_the_image_and_carries_text(coco_root):
    scene = next(s for s in load_scenes(coco_root, "val2014").values() if any(i.num_keypoints for i in s.instances))
    with Image.open(coco_root / "val2014" / scene.file_name) as image:
        figure = render_figure(image, scene, format_context(scene))
    assert figure.width >= scene.width + 400 and figure.height >= scene.height
    panel = figure.crop((scene.width, 0, figure.width, figure.height))
    assert len(set(panel.getdata())) > 10  # text was drawn on the panel


def test_long_context_makes_the_figure_taller():
    image = Image.new("RGB", (200, 180), GREY)
    short = render_figure(image, _scene(), "one line")
    tall = render_figure(image, _scene(), "\n".join(f"line {i}" for i in range(60)))
    assert short.height == 180 and tall.height > 180


def test_save_figure_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="image file .*missing.jpg of image id 7 does not exist"):
        save_figure(tmp_path / "missing.jpg", _scene(), "text", tmp_path / "out.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(CocoFormatError, match="cannot be read as an image"):
        save_figure(broken, _scene(), "text", tmp_path / "out.png")
