"""A split's image ids, read from one annotation file's images list (COCO's ids are shared across years)."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.splits import TRAINING_SPLITS, read_image_ids, split_image_ids, training_split_ids
from keypoint_instruct.errors import CocoFormatError


def test_the_ids_are_the_images_list_of_the_split(coco_root):
    found = split_image_ids(coco_root, "train2017")
    assert found.path.name == "captions_train2017.json"  # the smallest file that lists them
    assert found.ids == set(load_scenes(coco_root, "train2017"))  # every image, with annotations or not


def test_the_year_fixture_shares_ids_as_coco_does(coco_years):
    val2014 = split_image_ids(coco_years, "val2014").ids
    train2017, val2017 = (split_image_ids(coco_years, s).ids for s in ("train2017", "val2017"))
    assert train2017 | val2017 == val2014 and not train2017 & val2017 and len(train2017) == 36
    assert [s.split for s in training_split_ids(coco_years)] == ["train2017"]
    assert training_split_ids(coco_years, besides="train2017") == []
    assert TRAINING_SPLITS == ("train2014", "train2017")


def test_another_annotation_file_of_the_split_serves_when_captions_is_missing(coco_copy):
    ids = split_image_ids(coco_copy, "val2014").ids
    assert ids == read_image_ids(coco_copy / "annotations" / "instances_val2014.json")
    (coco_copy / "annotations" / "captions_val2014.json").unlink()
    found = split_image_ids(coco_copy, "val2014")
    assert found.path.name == "person_keypoints_val2014.json" and found.ids == ids
    assert split_image_ids(coco_copy, "train2014") is None


def test_a_compressed_or_foreign_file_is_one_clear_error(tmp_path, coco_root):
    packed = tmp_path / "instances_train2017.json"
    with open(coco_root / "annotations" / "instances_train2017.json", "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with pytest.raises(CocoFormatError, match="compressed"):
        read_image_ids(packed)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [{"name": "no id"}]}))
    with pytest.raises(CocoFormatError, match="other.json"):
        read_image_ids(other)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(CocoFormatError, match="empty.json"):
        read_image_ids(empty)
