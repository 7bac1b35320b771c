"""The review's pictures are `show`'s drawing of the annotations, as JPEGs of a bounded size."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from keypoint_instruct.coco.annotations import image_path, load_scenes
from keypoint_instruct.coco.render import draw_annotations
from keypoint_instruct.review.pictures import MAX_SIDE, write_picture
from tests.fixtures_dataset import DATASET_SPLIT


def test_the_picture_is_shows_drawing(coco_root, tmp_path):
    scene = next(iter(load_scenes(coco_root, DATASET_SPLIT).values()))
    picture = write_picture(coco_root, scene, tmp_path)
    assert picture.src == f"images/{scene.image_id}.jpg" and picture.missing is None
    with Image.open(tmp_path / picture.src) as written, Image.open(image_path(coco_root, scene)) as source:
        drawn = np.asarray(draw_annotations(source, scene), dtype=float)
        assert written.format == "JPEG" and written.size == (picture.width, picture.height) == source.size
        assert np.abs(np.asarray(written.convert("RGB"), dtype=float) - drawn).mean() < 4  # only JPEG's loss


def test_a_large_image_is_scaled_down_with_its_drawing(coco_copy, tmp_path):
    scene = next(iter(load_scenes(coco_copy, DATASET_SPLIT).values()))
    path = image_path(coco_copy, scene)
    with Image.open(path) as image:
        image.resize((image.width * 3, image.height * 3)).save(path)
    picture = write_picture(coco_copy, scene, tmp_path)
    assert max(picture.width, picture.height) == MAX_SIDE


def test_a_missing_or_broken_image_says_why(coco_copy, tmp_path):
    scene = next(iter(load_scenes(coco_copy, DATASET_SPLIT).values()))
    image_path(coco_copy, scene).write_bytes(b"not a jpeg")
    assert "cannot be read" in write_picture(coco_copy, scene, tmp_path).missing
    gone = dataclasses.replace(scene, file_name="nope.jpg")
    picture = write_picture(coco_copy, gone, tmp_path)
    assert picture.src is None and picture.missing.endswith("nope.jpg not found")
