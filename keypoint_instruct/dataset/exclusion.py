"""Keep benchmark images out of training data: a benchmark's images, a dataset's images, and the check between them.

A benchmark folder (what ``bench build`` writes) is known by a content id: a hash of its image ids, so the same
images give the same id wherever the folder lies (COCO image ids are shared across the years, so the split is not
part of it). ``build --exclude-bench BENCH_DIR`` drops the rows of those images and names each benchmark in the
card (front matter ``keypoint_instruct.excluded_benchmarks``, and in words). ``train_sft.py --exclude_bench``
refuses a dataset that holds an image of the benchmark, unless its card says it was built with that very benchmark
excluded. ``bench build --exclude-training`` reads a dataset folder's image ids here too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from keypoint_instruct.errors import InputNotFoundError, TrainingConfigError

logger = logging.getLogger(__name__)

CARD_KEY = "keypoint_instruct"  # the card's front-matter block of keypoint-instruct's own records
_COCO_FILE_ID = re.compile(r"(\d{6,12})\.jpg$")  # 000000000042.jpg, COCO_val2014_000000000042.jpg


def content_id(image_ids: Iterable[int]) -> str:
    """The id of a benchmark's content: a short sha256 of its sorted image ids."""
    text = ",".join(str(i) for i in sorted({int(i) for i in image_ids}))
    return hashlib.sha256(f"hpaub-images:{text}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BenchImages:
    """The images of a benchmark folder."""

    root: Path
    name: str
    coco_split: str
    image_ids: frozenset[int]

    @property
    def content_id(self) -> str:
        return content_id(self.image_ids)

    def record(self) -> dict:
        """How the card records it (front matter)."""
        return {"name": self.name, "content_id": self.content_id, "coco_split": self.coco_split,
                "images": len(self.image_ids)}  # fmt: skip


def read_bench_images(root: str | Path) -> BenchImages:
    """The images of the benchmark folder ``root`` (its questions.jsonl and meta.json)."""
    root = Path(root)
    questions = root / "questions.jsonl"
    if not questions.is_file():
        raise InputNotFoundError(f"{root} is not a benchmark folder: {questions} is missing (run `bench build`)")
    ids = set()
    with open(questions, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    ids.add(int(json.loads(line)["image_id"]))
                except (ValueError, KeyError, TypeError):
                    raise InputNotFoundError(f"{questions}:{number}: not a question with an image_id") from None
    if not ids:
        raise InputNotFoundError(f"{questions} holds no questions")
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    found = BenchImages(root, str(meta.get("name", "HPAUB")), str(meta.get("coco_split", "unknown")), frozenset(ids))
    if meta.get("content_id") not in (None, found.content_id):
        logger.warning("%s: meta.json names content id %s, its questions make %s", root, meta["content_id"],
                       found.content_id)  # fmt: skip
    return found


def dataset_image_ids(folder: str | Path) -> set[int]:
    """The image ids of every row of a dataset folder written by ``build`` (its Parquet files' ``image_id``)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    files = sorted(folder.glob("*/train-*.parquet"))
    if not files:
        raise InputNotFoundError(f"{folder} is not a dataset folder written by `build` (no <config>/train-*.parquet)")
    ids: set[int] = set()
    for path in files:
        ids.update(pq.read_table(path, columns=["image_id"]).column("image_id").to_pylist())
    return ids


def rows_image_ids(dataset) -> set[int]:
    """The image ids of a loaded dataset's rows: its ``image_id`` column, else the COCO file names of its images."""
    if "image_id" in dataset.column_names:
        return {int(i) for i in dataset["image_id"]}
    ids = set()
    for images in dataset.select_columns(["images"]).with_format("arrow")["images"].to_pylist():
        for image in images or ():
            match = _COCO_FILE_ID.search((image or {}).get("path") or "")
            if match is None:
                raise TrainingConfigError(
                    "--exclude_bench needs each row's COCO image id: the dataset has no image_id column and an image "
                    f"path without a COCO file name ({(image or {}).get('path')!r})"
                )
            ids.add(int(match.group(1)))
    return ids


def card_exclusions(card_text: str) -> list[dict]:
    """The benchmarks a dataset card says its build excluded (front matter ``keypoint_instruct``)."""
    from huggingface_hub import DatasetCard

    try:
        data = DatasetCard(card_text).data.to_dict()
    except ValueError:
        return []
    block = data.get(CARD_KEY) or {}
    return [b for b in block.get("excluded_benchmarks") or [] if isinstance(b, dict)]


def check_bench_exclusion(dataset_name: str, image_ids: set[int], card_text: str, bench_dirs: Iterable) -> None:
    """Refuse training data that holds an image of a benchmark in ``bench_dirs`` (a one-line TrainingConfigError).

    A dataset whose card says it was built with that benchmark excluded (same content id) is accepted as such.
    """
    excluded = {b.get("content_id") for b in card_exclusions(card_text)}
    for bench_dir in bench_dirs:
        bench = read_bench_images(bench_dir)
        if bench.content_id in excluded:
            logger.info("%s was built with benchmark %s (%s) excluded", dataset_name, bench_dir, bench.content_id)
            continue
        shared = sorted(image_ids & bench.image_ids)
        if shared:
            shown = ", ".join(str(i) for i in shared[:5]) + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
            raise TrainingConfigError(
                f"dataset {dataset_name} holds {len(shared)} of the {len(bench.image_ids)} images of benchmark "
                f"{bench_dir} (image ids {shown}): a model trained on them cannot be judged on it; rebuild the "
                f"dataset with `keypoint-instruct build ... --exclude-bench {bench_dir}`"
            )
        logger.info("%s shares no image with benchmark %s (%s)", dataset_name, bench_dir, bench.content_id)
