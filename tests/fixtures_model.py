"""Fixtures of the training stage: a tiny random LLaVA, and a small dataset folder in the row contract.

``tiny_llava_dir`` is what tests/demo train. ``sft_dataset`` returns (dataset_dir, coco_root): the project's own
``dataset_dir``/``coco_root`` fixtures when the dataset stage provides them, else a small folder written here in
the same Hub layout and row contract (ARCHITECTURE.md, "Dataset rows"), with landscape and portrait JPEGs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

TASKS = ("conversation", "detailed_description", "complex_reasoning")
_ANSWERS = (
    "The person is standing with the left arm raised and the right knee bent.",
    "A skier leans forward with both elbows bent about ninety degrees.",
    "The player crouches to lower the centre of mass, ready to move left or right.",
)
_QUESTIONS = (
    "What is the person doing?",
    "Describe the poses and actions of the people in the image.",
    "Why is the player crouching?",
)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    """A tiny random LLaVA-1.5 (model, processor, chat template) saved with save_pretrained."""
    from keypoint_instruct.tiny_llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


def _row(task: str, image_id: int, n: int, rng: random.Random, split: str, file_name: str) -> dict:
    turns = 2 if task == "conversation" else 1
    messages = []
    for turn in range(turns):
        content = [{"type": "text", "text": rng.choice(_QUESTIONS)}]
        if turn == 0:
            content.insert(0, {"type": "image", "text": None})
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": rng.choice(_ANSWERS)}]})
    return {
        "id": f"{task}-{image_id}-{n}",
        "image_id": image_id,
        "coco_split": split,
        "file_name": file_name,
        "task": task,
        "messages": messages,
        "images": [{"path": f"{split}/{file_name}", "bytes": None}],
        "teacher_model": "offline-posefacts",
        "prompt_version": "test",
        "response_key": f"{task}{image_id}{n}",
    }


def write_sft_dataset(out_dir: Path, coco_root: Path, n_images: int = 6, seed: int = 0) -> Path:
    """Write JPEGs under coco_root/train2017 and a dataset folder (<config>/train-00000-of-00001.parquet)."""
    from datasets import Dataset, Features, Image, List, Value
    from PIL import Image as PILImage

    rng = random.Random(seed)
    split = "train2017"
    (coco_root / split).mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {task: [] for task in TASKS}
    for index in range(n_images):
        image_id = 1000 + index
        file_name = f"{image_id:012d}.jpg"
        size = (64, 48) if index % 3 else (40, 64)  # landscape and portrait, as in COCO
        color = tuple(rng.randrange(256) for _ in range(3))
        PILImage.new("RGB", size, color).save(coco_root / split / file_name)
        for task in TASKS:
            rows[task].append(_row(task, image_id, 0, rng, split, file_name))
    features = Features(
        {
            "id": Value("string"),
            "image_id": Value("int64"),
            "coco_split": Value("string"),
            "file_name": Value("string"),
            "task": Value("string"),
            "messages": List(
                {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
            ),
            "images": List(Image(decode=False)),
            "teacher_model": Value("string"),
            "prompt_version": Value("string"),
            "response_key": Value("string"),
        }
    )
    configs = {**rows, "all": [row for task in TASKS for row in rows[task]]}
    card = ["---", "configs:"]
    for name, config_rows in configs.items():
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        Dataset.from_list(config_rows, features=features).to_parquet(out_dir / name / "train-00000-of-00001.parquet")
        card += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {name}/train-*"]
        if name == "all":
            card.append("  default: true")
    (out_dir / "README.md").write_text("\n".join([*card, "---", "", "Test dataset.", ""]))
    return out_dir


@pytest.fixture(scope="session")
def sft_dataset(request, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset_dir, coco_root) to train on: the project's build when it exists, else a stand-in in the contract."""
    try:
        return request.getfixturevalue("dataset_dir"), request.getfixturevalue("coco_root")
    except pytest.FixtureLookupError:
        base = tmp_path_factory.mktemp("sft_data")
        return write_sft_dataset(base / "dataset", base / "coco"), base / "coco"
