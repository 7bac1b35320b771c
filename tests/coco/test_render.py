"""The Fig. 1-style picture: what is drawn where, how people are labelled, and the size of the figure."""

from __future__ import annotations

import pytest
from PIL import Image

from keypoint_instruct.coco.annotations import Instance, Scene, load_scenes
from keypoint_instruct.coco.context import format_context
from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.coco.render import (
    ACROSS,
    CROWD_BOX,
    LEFT,
    PERSON_BOXES,
    RIGHT,
    _labels,
    _place,
    draw_annotations,
    draw_legend,
    render_figure,
    save_figure,
)
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError

GREY = (128, 128, 128)


def _keypoints(joints: dict) -> tuple[float, ...]:
    """51 numbers from {name: (x, y, v)}; the others unlabelled."""
    values = [0.0] * 51
    for name, (x, y, v) in joints.items():
        i = 3 * KEYPOINT_NAMES.index(name)
        values[i : i + 3] = [float(x), float(y), float(v)]
    return tuple(values)


def _person(ident: int, joints: dict, bbox=(20.0, 20.0, 160.0, 150.0), crowd: bool = False) -> Instance:
    return Instance(ident, "person", bbox, crowd, _keypoints(joints), sum(1 for _, _, v in joints.values() if v))


def _scene(*instances: Instance) -> Scene:
    return Scene(7, "x.jpg", "val2014", 200, 180, ("A person.",), instances)


# A person facing the camera: their own left arm is on the picture's right.
ARMS = {
    "left_shoulder": (130, 60, 2),
    "right_shoulder": (70, 60, 2),
    "left_elbow": (130, 130, 2),
    "right_elbow": (70, 130, 1),  # hidden: the right upper arm is dashed
    "left_eye": (160, 25, 1),  # hidden, with no labelled neighbour: a lone ring
    "nose": (100, 40, 0),  # unlabelled: not drawn
}


def test_left_right_and_across_limbs_have_their_colours():
    drawn = draw_annotations(Image.new("RGB", (200, 180), GREY), _scene(_person(1, ARMS)))
    assert drawn.getpixel((130, 95)) == LEFT  # the person's own left upper arm
    assert drawn.getpixel((100, 60)) == ACROSS  # shoulder to shoulder
    right_arm = [drawn.getpixel((70, y)) for y in range(75, 120)]
    assert RIGHT in right_arm and GREY in right_arm  # dashed: colour and gaps
    assert drawn.getpixel((130, 130)) == LEFT  # a visible joint: a filled dot
    ring = [drawn.getpixel((160 + dx, 25)) for dx in range(-7, 8)]
    assert drawn.getpixel((160, 25)) == GREY and LEFT in ring  # a hidden joint: a hollow ring
    assert drawn.getpixel((100, 40)) == GREY  # the unlabelled nose


def test_people_are_labelled_as_the_notes_number_them_and_each_has_a_colour():
    """Crowd regions are no person; people without keypoints still count; other objects keep their category."""
    crowd = _person(1, {}, bbox=(0.0, 0.0, 50.0, 50.0), crowd=True)
    first = Instance(2, "person", (10.0, 100.0, 40.0, 60.0), False, None, 0)
    racket = Instance(3, "tennis racket", (150.0, 10.0, 30.0, 30.0), False, None, 0)
    second = _person(4, ARMS, bbox=(60.0, 50.0, 90.0, 100.0))
    scene = _scene(crowd, first, racket, second)
    labels = _labels(scene)
    assert labels[2] == ("Person 1", PERSON_BOXES[0]) and labels[4] == ("Person 2", PERSON_BOXES[1])
    assert labels[3][0] == "tennis racket" and 1 not in labels
    drawn = draw_annotations(Image.new("RGB", (200, 180), GREY), scene)
    assert drawn.getpixel((10, 140)) == PERSON_BOXES[0] and drawn.getpixel((60, 140)) == PERSON_BOXES[1]
    assert drawn.getpixel((0, 25)) == CROWD_BOX


def test_labels_of_boxes_sharing_a_corner_do_not_overlap():
    box = (20.0, 40.0, 180.0, 170.0)
    first = _place((60, 14), box, (200, 180), [])
    second = _place((60, 14), box, (200, 180), [first])
    assert first == (20.0, 26.0, 80.0, 40.0)  # above the box's top-left corner
    assert second[2] <= first[0] or second[0] >= first[2] or second[3] <= first[1] or second[1] >= first[3]
    corner = _place((60, 14), (0.0, 0.0, 200.0, 180.0), (200, 180), [])
    assert corner == (0.0, 0.0, 60.0, 14.0)  # no room above: inside, never off the picture


def test_the_figure_has_the_legend_under_the_image_and_the_text_beside_it(coco_root):
    scene = next(s for s in load_scenes(coco_root, "val2014").values() if any(i.num_keypoints for i in s.instances))
    with Image.open(coco_root / "val2014" / scene.file_name) as image:
        figure = render_figure(image, scene, format_context(scene))
    legend = draw_legend(scene.width, unit=max(2, round(min(scene.width, scene.height) / 160)))
    assert figure.width >= scene.width + 400 and figure.height >= scene.height + legend.height
    strip = figure.crop((0, scene.height, scene.width, scene.height + legend.height))
    colours = set(strip.getdata())
    assert LEFT in colours and RIGHT in colours and ACROSS in colours
    panel = figure.crop((scene.width, 0, figure.width, figure.height))
    assert len(set(panel.getdata())) > 10  # text was drawn on the panel


def test_a_narrow_image_gets_a_legend_that_fits():
    wide = draw_legend(2000, unit=2)
    narrow = draw_legend(160, unit=2)
    assert wide.width == 2000 and narrow.height > wide.height  # one column instead of two
    right_edge = {narrow.getpixel((narrow.width - 1, y)) for y in range(narrow.height)}
    assert right_edge == {narrow.getpixel((0, 0))}  # no text runs off the edge
    figure = render_figure(Image.new("RGB", (160, 120), GREY), _scene(), "text")
    assert figure.getpixel((narrow.width - 1, 125)) != (250, 250, 247)  # the legend column, not the text panel


def test_long_context_makes_the_figure_taller():
    image = Image.new("RGB", (200, 180), GREY)
    short = render_figure(image, _scene(_person(1, ARMS)), "one line")
    tall = render_figure(image, _scene(_person(1, ARMS)), "\n".join(f"line {i}" for i in range(80)))
    assert short.height < tall.height


def test_save_figure_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="image file .*missing.jpg of image id 7 does not exist"):
        save_figure(tmp_path / "missing.jpg", _scene(), "text", tmp_path / "out.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(CocoFormatError, match="cannot be read as an image"):
        save_figure(broken, _scene(), "text", tmp_path / "out.png")
