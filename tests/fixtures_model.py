"""Fixtures of the training stage: a tiny random LLaVA-1.5 and the dataset it trains on.

``tiny_llava_dir`` is what tests and the demo train. ``sft_dataset`` pairs the project's own dataset build
(``dataset_dir``, tests/fixtures_dataset.py) with the COCO root its image paths are relative to.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    """A tiny random LLaVA-1.5 (model, processor, chat template) saved with save_pretrained; treat as read-only."""
    from keypoint_instruct.training.tiny_llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="session")
def sft_dataset(dataset_dir, coco_root) -> tuple[Path, Path]:
    """(dataset folder, COCO root) to train on: the build of the fixture COCO, images by relative path."""
    return dataset_dir, coco_root
