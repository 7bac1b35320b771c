"""Loading COCO annotation files into scenes: the join agrees with a bare pycocotools join; schema errors."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from keypoint_instruct.coco import KEYPOINT_NAMES, SKELETON, annotation_file, image_path, load_scenes
from keypoint_instruct.errors import CocoFormatError, InputNotFoundError


def _bare(path):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.parametrize("split", ["val2014", "train2017"])
def test_scenes_match_a_bare_pycocotools_join(coco_root, split):
    inst, kps, caps = (
        _bare(annotation_file(coco_root, split, k)) for k in ("instances", "person_keypoints", "captions")
    )
    scenes = load_scenes(coco_root, split)
    assert list(scenes) == sorted(inst.getImgIds())
    for image_id, scene in scenes.items():
        img = inst.imgs[image_id]
        assert (scene.file_name, scene.width, scene.height) == (img["file_name"], img["width"], img["height"])
        assert scene.coco_split == split
        assert scene.captions == tuple(a["caption"] for a in caps.imgToAnns[image_id])
        anns = sorted(inst.imgToAnns[image_id], key=lambda a: a["id"])
        assert [i.id for i in scene.instances] == [a["id"] for a in anns]
        for got, ann in zip(scene.instances, anns, strict=True):
            assert got.category == inst.cats[ann["category_id"]]["name"]
            assert got.bbox == tuple(ann["bbox"])
            assert got.iscrowd == bool(ann["iscrowd"])
            if ann["category_id"] == 1:
                assert got.keypoints == tuple(float(v) for v in kps.anns[ann["id"]]["keypoints"])
                assert got.num_keypoints == kps.anns[ann["id"]]["num_keypoints"]
            else:
                assert got.keypoints is None and got.num_keypoints == 0


def test_keypoint_names_and_skeleton_are_cocos(coco_root):
    cat = json.loads(annotation_file(coco_root, "val2014", "person_keypoints").read_text())["categories"][0]
    assert tuple(cat["keypoints"]) == KEYPOINT_NAMES and len(KEYPOINT_NAMES) == 17
    assert [tuple(p) for p in cat["skeleton"]] == list(SKELETON) and len(SKELETON) == 19
    assert KEYPOINT_NAMES[:3] == ("nose", "left_eye", "right_eye") and KEYPOINT_NAMES[-1] == "right_ankle"


def test_image_path_points_at_the_jpeg(coco_root):
    for split in ("val2014", "train2017"):
        scene = next(iter(load_scenes(coco_root, split).values()))
        path = image_path(coco_root, scene)
        assert path == coco_root / split / scene.file_name and path.is_file()


def _rewrite(tree, kind, change):
    path = annotation_file(tree, "train2017", kind)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_missing_file_unknown_split_and_missing_root(coco_copy, tmp_path):
    with pytest.raises(InputNotFoundError, match="unknown split 'test2015'.*splits found: train2017, val2014"):
        load_scenes(coco_copy, "test2015")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_scenes(tmp_path / "nowhere", "val2014")
    annotation_file(coco_copy, "train2017", "captions").unlink()
    with pytest.raises(FileNotFoundError, match="captions_train2017.json is missing"):
        load_scenes(coco_copy, "train2017")


def test_schema_errors_name_the_file_and_annotation(coco_copy):
    def short_bbox(data):
        data["annotations"][3]["bbox"] = [1, 2, 3]

    path = _rewrite(coco_copy, "instances", short_bbox)
    ann_id = json.loads(path.read_text())["annotations"][3]["id"]
    with pytest.raises(ValueError, match=rf"instances_train2017.json: annotation id {ann_id} has a bbox of 3 numbers"):
        load_scenes(coco_copy, "train2017")


def test_type_errors_are_traced_to_the_annotation_id(coco_copy):
    def text_bbox(data):
        data["annotations"][5]["bbox"] = "wide"

    path = _rewrite(coco_copy, "instances", text_bbox)
    ann_id = json.loads(path.read_text())["annotations"][5]["id"]
    with pytest.raises(CocoFormatError, match=rf"annotation id {ann_id} is not in COCO's schema: .*bbox"):
        load_scenes(coco_copy, "train2017")


def test_segmentation_is_not_needed(coco_copy):
    def drop_polygons(data):
        for ann in data["annotations"]:
            ann["segmentation"] = None

    _rewrite(coco_copy, "instances", drop_polygons)
    assert len(load_scenes(coco_copy, "train2017")) == 24


def test_keypoints_attach_to_person_annotations_only(coco_copy, caplog):
    instances = json.loads(annotation_file(coco_copy, "train2017", "instances").read_text())
    person_cat = next(c["id"] for c in instances["categories"] if c["name"] == "person")
    dog = next(a for a in instances["annotations"] if a["category_id"] != person_cat)

    def add_dog_keypoints(data):
        data["annotations"].append({**dog, "keypoints": [10, 10, 2] * 17, "num_keypoints": 17})

    _rewrite(coco_copy, "person_keypoints", add_dog_keypoints)
    with caplog.at_level("WARNING", logger="keypoint_instruct.coco"):
        scenes = load_scenes(coco_copy, "train2017")
    got = next(i for i in scenes[dog["image_id"]].instances if i.id == dog["id"])
    assert got.category != "person" and got.keypoints is None and got.num_keypoints == 0
    assert "1 keypoint annotations match no person annotation" in caplog.text and str(dog["id"]) in caplog.text


def test_negative_box_size_and_a_file_as_root(coco_copy, tmp_path):
    def flip(data):
        data["annotations"][2]["bbox"][3] = -4.0

    path = _rewrite(coco_copy, "instances", flip)
    ann_id = json.loads(path.read_text())["annotations"][2]["id"]
    with pytest.raises(CocoFormatError, match=rf"annotation id {ann_id} has a bbox .* negative width or height"):
        load_scenes(coco_copy, "train2017")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputNotFoundError, match="is not a folder"):
        load_scenes(tmp_path / "file", "train2017")
