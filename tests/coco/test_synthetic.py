"""The synthetic COCO tree: COCO's schema, both namings, a realistic mix, seeded, images that match."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from keypoint_instruct.coco.annotations import annotation_file
from keypoint_instruct.coco.synthetic import file_name, write_coco_tree
from tests.paths import REPO


def _load(root, split, kind):
    return json.loads(annotation_file(root, split, kind).read_text())


def test_file_naming():
    assert file_name("val2014", 42) == "COCO_val2014_000000000042.jpg"
    assert file_name("train2014", 581929) == "COCO_train2014_000000581929.jpg"
    assert file_name("train2017", 42) == "000000000042.jpg"


@pytest.mark.parametrize("split", ["val2014", "train2017"])
def test_schema_of_the_three_files(coco_root, split):
    inst, kps, caps = (_load(coco_root, split, k) for k in ("instances", "person_keypoints", "captions"))
    for data in (inst, kps, caps):
        assert {"info", "licenses", "images", "annotations"} <= set(data)
        assert data["images"] == inst["images"]
    img = inst["images"][0]
    assert set(img) == {"license", "file_name", "coco_url", "height", "width", "date_captured", "flickr_url", "id"}
    assert len(inst["categories"]) == 80 and {c["name"] for c in inst["categories"]} >= {"person", "skis"}
    assert [c["name"] for c in kps["categories"]] == ["person"]
    ann = inst["annotations"][0]
    assert set(ann) == {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
    assert {a["id"] for a in kps["annotations"]} == {a["id"] for a in inst["annotations"] if a["category_id"] == 1}
    for a in kps["annotations"]:
        assert len(a["keypoints"]) == 51 and len(a["bbox"]) == 4
        assert a["num_keypoints"] == sum(1 for v in a["keypoints"][2::3] if v > 0)
        assert all(a["keypoints"][i : i + 3] == [0, 0, 0] for i in range(0, 51, 3) if a["keypoints"][i + 2] == 0)
    assert set(caps["annotations"][0]) == {"image_id", "id", "caption"}


def test_realistic_mix(coco_root):
    inst, kps, caps = (_load(coco_root, "val2014", k) for k in ("instances", "person_keypoints", "captions"))
    people_per_image = Counter(a["image_id"] for a in kps["annotations"] if not a["iscrowd"])
    assert len(people_per_image) < len(inst["images"])  # some images have nobody
    assert any(a["iscrowd"] for a in kps["annotations"])
    counts = Counter(a["num_keypoints"] for a in kps["annotations"] if not a["iscrowd"])
    assert counts[0] and counts[17] and any(counts[n] for n in range(1, 6))
    visibility = Counter(v for a in kps["annotations"] for v in a["keypoints"][2::3])
    assert visibility[1] and visibility[2]
    per_image = Counter(a["image_id"] for a in caps["annotations"])
    assert min(per_image.values()) >= 5 and len(per_image) == len(inst["images"])
    odd = [a["caption"] for a in caps["annotations"] if a["caption"] != " ".join(a["caption"].split())]
    assert any(c.endswith("\n") for c in odd) and any("  " in c for c in odd) and any(c[0] == " " for c in odd)
    assert len({a["category_id"] for a in inst["annotations"]}) >= 25
    ids = [a["id"] for a in inst["annotations"]]
    assert len(set(ids)) == len(ids) and ids != sorted(ids)  # unique, and file order is not id order


def test_images_exist_with_the_annotated_size(coco_root):
    inst = _load(coco_root, "train2017", "instances")
    for img in inst["images"]:
        with Image.open(coco_root / "train2017" / img["file_name"]) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.size == (img["width"], img["height"])


def test_boxes_and_keypoints_inside_the_image(coco_root):
    inst = _load(coco_root, "val2014", "person_keypoints")
    sizes = {img["id"]: (img["width"], img["height"]) for img in inst["images"]}
    for a in inst["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w + 1 and y + bh <= h + 1 and bw > 0 and bh > 0
        for i in range(0, 51, 3):
            if a["keypoints"][i + 2]:
                assert 0 <= a["keypoints"][i] < w and 0 <= a["keypoints"][i + 1] < h


def test_same_seed_same_bytes_other_seed_other_content(tmp_path):
    one = write_coco_tree(tmp_path / "one", "val2017", 6, seed=3, draw_images=False)
    two = write_coco_tree(tmp_path / "two", "val2017", 6, seed=3, draw_images=False)
    three = write_coco_tree(tmp_path / "three", "val2017", 6, seed=4, draw_images=False)
    for kind in ("captions", "instances", "person_keypoints"):
        a, b, c = (annotation_file(r, "val2017", kind).read_bytes() for r in (one, two, three))
        assert a == b and a != c
    assert not (one / "val2017").exists()  # draw_images=False writes annotations only


def test_fixture_script_writes_a_tree_and_rejects_bad_input(tmp_path):
    import subprocess
    import sys

    script = REPO / "scripts" / "make_coco_fixture.py"
    run = lambda *args: subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)  # noqa: E731
    ok = run(str(tmp_path / "coco"), "--split", "val2017", "--images", "3", "--no-images")
    assert ok.returncode == 0, ok.stderr
    assert len(_load(tmp_path / "coco", "val2017", "instances")["images"]) == 3
    for args in (["--split", "../x"], ["--split", "a b"], ["--images", "0"]):
        bad = run(str(tmp_path / "other"), *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "error:" in bad.stderr.splitlines()[-1]
    assert not (tmp_path / "other").exists() and not (tmp_path / "x").exists()


def test_one_image_in_a_hundred_has_no_annotations_at_all(tmp_path):
    # as in COCO (train2017: 1,021 of 118,287 images): listed in every file, captioned, but no instance at all
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.context import format_context, select_scenes

    root = write_coco_tree(tmp_path, "val2017", 200, seed=1, draw_images=False)
    inst, kps, caps = (_load(root, "val2017", k) for k in ("instances", "person_keypoints", "captions"))
    ids = [img["id"] for img in inst["images"]]
    bare = set(ids) - {a["image_id"] for a in inst["annotations"]}
    assert bare == {ids[98], ids[198]}
    assert not bare & {a["image_id"] for a in kps["annotations"]}
    assert [img["id"] for img in kps["images"]] == ids  # the keypoints file still lists every image
    scenes = load_scenes(root, "val2017")
    for image_id in bare:
        scene = scenes[image_id]
        assert scene.instances == () and len(scene.captions) >= 5
        assert format_context(scene) == "\n".join(" ".join(c.split()) for c in scene.captions)
    assert bare <= {s.image_id for s in select_scenes(scenes, min_persons=0)}
    assert not bare & {s.image_id for s in select_scenes(scenes)}
