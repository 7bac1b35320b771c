"""COCO fixtures: a small synthetic tree with a 2014-named and a 2017-named split (coco.synthetic)."""

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
