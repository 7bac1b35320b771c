"""Dataset fixtures: a response cache filled by the offline teacher, and the project's own build of it.

``dataset_dir`` is what H-train and H-bench use: the folder ``keypoint-instruct build`` writes from the fixture COCO
(split train2017) and the offline teacher's responses, with every config readable by ``load_dataset``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATASET_SPLIT = "train2017"
DATASET_VERSION = "1.0.0"


def put_response(
    cache,
    task: str,
    image_id: int,
    text: str,
    *,
    coco_split: str = DATASET_SPLIT,
    finish_reason: str = "stop",
    model: str = "scripted-teacher",
    prompt_version: str = "scripted-v1",
    cost_usd: float = 0.001,
    salt: str = "",
):
    """Store one scripted teacher answer in a ``ResponseCache`` through its real write API."""
    from keypoint_instruct.llm.request import ChatRequest, Completion

    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"{task} {coco_split} {image_id} {prompt_version} {salt}"}],
        "temperature": 0.0,
        "max_tokens": 512,
        "seed": 0,
    }
    request = ChatRequest(task=task, item_id=image_id, collection=coco_split, prompt_version=prompt_version, body=body)
    completion = Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=100,
        completion_tokens=40,
        cached_tokens=0,
        model=model,
    )
    return cache.put(request, completion, 0.01, cost_usd=cost_usd)


def fill_offline_cache(coco_root: Path, cache_path: Path, split: str = DATASET_SPLIT) -> Path:
    """A response cache holding the offline teacher's answer for every task of every image with a person."""
    from keypoint_instruct.cli import main

    code = main(
        [
            "generate",
            "--teacher",
            "offline",
            "--task",
            "all",
            "--coco-root",
            str(coco_root),
            "--split",
            split,
            "--cache",
            str(cache_path),
        ]
    )
    assert code == 0, "offline generation failed"
    return cache_path


@pytest.fixture(scope="session")
def offline_cache(coco_root, tmp_path_factory) -> Path:
    """The offline teacher's responses for the fixture COCO's train2017 split (read-only)."""
    return fill_offline_cache(coco_root, tmp_path_factory.mktemp("offline_cache") / "responses.sqlite")


@pytest.fixture(scope="session")
def dataset_dir(coco_root, offline_cache, tmp_path_factory) -> Path:
    """A dataset folder built by `keypoint-instruct build` (version 1.0.0, split train2017); treat as read-only.

    Images are path-only, relative to ``coco_root`` (``train2017/<file_name>``).
    """
    from keypoint_instruct.cli import main

    out = tmp_path_factory.mktemp("dataset") / "keypoint_instruct"
    argv = ["build", "--coco-root", str(coco_root), "--split", DATASET_SPLIT, "--cache", str(offline_cache)]
    code = main([*argv, "--out", str(out), "--version", DATASET_VERSION])
    assert code == 0, "the fixture build failed"
    return out
