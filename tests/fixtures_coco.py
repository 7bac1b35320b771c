"""COCO fixtures: a small synthetic tree with a 2014-named and a 2017-named split (coco.synthetic), and a tree whose
2017 splits reuse its val2014 image ids, as COCO's do."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypoint_instruct.coco.synthetic import write_coco_tree

# val2014 is the larger split: HPAUB's builder picks 30 images with a well-labelled person from it.
FIXTURE_SPLITS = {"val2014": 48, "train2017": 24}
FIXTURE_SEED = 0


def make_fixture_tree(root: Path) -> Path:
    """The fixture tree: val2014 (48 images, >= 36 with a person with >= 8 labelled keypoints) and train2017 (24)."""
    for split, images in FIXTURE_SPLITS.items():
        write_coco_tree(root, split, images, seed=FIXTURE_SEED)
    return root


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory) -> Path:
    """A synthetic COCO tree (annotations/ + JPEGs) shared by the whole session; treat it as read-only."""
    return make_fixture_tree(tmp_path_factory.mktemp("coco"))


@pytest.fixture
def coco_copy(coco_root, tmp_path) -> Path:
    """A writable copy of the fixture tree (annotations and images), for tests that break or change files."""
    import shutil

    return Path(shutil.copytree(coco_root, tmp_path / "coco"))


# coco_years: train2017 takes every val2014 image but each VAL2017_EVERY-th one (those form val2017), as COCO 2017
# took 2014's val images minus the 5,000 of val2017. The ids are shared, the file names follow 2017's naming.
VAL2017_EVERY = 4


def split_years(root: Path, source: str = "val2014", every: int = VAL2017_EVERY) -> tuple[set[int], set[int]]:
    """Write ``train2017`` and ``val2017`` annotation files made of ``source``'s images (same ids); return their ids.

    Only annotation files: nothing here reads the 2017 images. A test fixture's device, not a product default.
    """
    import json

    from keypoint_instruct.coco.synthetic import file_name

    ids = sorted(
        json.loads((root / "annotations" / f"instances_{source}.json").read_text())["images"], key=lambda i: i["id"]
    )
    val2017 = {image["id"] for n, image in enumerate(ids) if n % every == every - 1}
    train2017 = {image["id"] for image in ids} - val2017
    for kind in ("captions", "instances", "person_keypoints"):
        data = json.loads((root / "annotations" / f"{kind}_{source}.json").read_text())
        for split, keep in (("train2017", train2017), ("val2017", val2017)):
            images = [
                {**image, "file_name": file_name(split, image["id"])}
                for image in data["images"]
                if image["id"] in keep
            ]
            annotations = [a for a in data["annotations"] if a["image_id"] in keep]
            out = {**data, "images": images, "annotations": annotations}
            (root / "annotations" / f"{kind}_{split}.json").write_text(json.dumps(out))
    return train2017, val2017


@pytest.fixture(scope="session")
def coco_years(coco_root, tmp_path_factory) -> Path:
    """A COCO root with val2014 (the fixture's 48 images), train2017 (36 of them, same ids) and val2017 (the other
    12): ``bench build --split val2014`` must never draw a train2017 id from it. Read-only."""
    import shutil

    root = tmp_path_factory.mktemp("coco_years")
    (root / "annotations").mkdir()
    for kind in ("captions", "instances", "person_keypoints"):
        shutil.copyfile(
            coco_root / "annotations" / f"{kind}_val2014.json", root / "annotations" / f"{kind}_val2014.json"
        )
    shutil.copytree(coco_root / "val2014", root / "val2014")
    split_years(root)
    return root
