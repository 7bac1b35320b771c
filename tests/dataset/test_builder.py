"""keypoint_instruct/dataset/builder.py: the datasets builder, its configs, its cache hash and its shards."""

from __future__ import annotations

import shutil

from keypoint_instruct.dataset.builder import KeypointInstruct, features
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.vocab import DATASET_CONFIGS, TASKS
from tests.fixtures_dataset import DATASET_SPLIT, put_response


def test_rows_pass_trl_checks_and_render_through_a_llava_chat_template(dataset_dir, tiny_llava_dir):
    from datasets import load_dataset
    from transformers import AutoProcessor
    from trl.data_utils import is_conversational

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    ds = load_dataset(str(dataset_dir), "all", split="train")
    seen_tasks = set()
    for row in ds:
        if row["task"] in seen_tasks:
            continue
        seen_tasks.add(row["task"])
        assert is_conversational(row)
        text = processor.apply_chat_template(row["messages"], tokenize=False)
        assert processor.image_token in text
        assert row["messages"][-1]["content"][0]["text"] in text
        assert row["images"][0]["path"] == f"{DATASET_SPLIT}/{row['file_name']}"
    assert seen_tasks == set(TASKS)


def test_builder_configs_and_stale_cache_protection(coco_root, offline_cache, tmp_path):
    assert KeypointInstruct.DEFAULT_CONFIG_NAME == "all"
    assert [c.name for c in KeypointInstruct.BUILDER_CONFIGS] == list(DATASET_CONFIGS)
    cache_path = tmp_path / "responses.sqlite"
    shutil.copy(offline_cache, cache_path)

    def build():
        builder = KeypointInstruct(
            config_name="complex_reasoning",
            cache_dir=str(tmp_path / "hf"),
            coco_root=str(coco_root),
            coco_split=DATASET_SPLIT,
            cache_path=str(cache_path),
        )
        builder.download_and_prepare()
        return builder.as_dataset(split="train")

    before = build()
    assert before.features == features()
    assert set(before["task"]) == {"complex_reasoning"}
    image_id = before[0]["image_id"]
    with ResponseCache(cache_path) as cache:
        put_response(cache, "complex_reasoning", image_id, "Question: Why bend?\nAnswer: To jump higher.")
    after = build()  # a changed cache changes the builder's hash: no stale rows
    assert after.num_rows == before.num_rows
    (row,) = [r for r in after if r["image_id"] == image_id]
    assert row["messages"][1]["content"][0]["text"] == "To jump higher."


def test_all_config_equals_the_folders_all(dataset_dir, coco_root, offline_cache, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    builder = KeypointInstruct(
        config_name="all",
        cache_dir=str(tmp_path / "hf"),
        coco_root=str(coco_root),
        coco_split=DATASET_SPLIT,
        cache_path=str(offline_cache),
    )
    builder.download_and_prepare()
    generated = builder.as_dataset(split="train").data.table
    written = pa.concat_tables(pq.read_table(p) for p in sorted((dataset_dir / "all").glob("train-*.parquet")))
    assert generated.num_rows == written.num_rows > 0
    assert generated.equals(written)


def test_the_builder_fingerprint_covers_the_code_and_tables_that_shape_rows():
    from keypoint_instruct.dataset.builder import _code_files

    files = _code_files()
    assert all(p.is_file() for p in files), [p for p in files if not p.is_file()]
    names = {p.name for p in files}
    assert {"builder.py", "parse.py", "quality.py", "samples.py", "quality_filters.json"} <= names


def test_datasets_can_generate_the_tasks_of_all_in_parallel(coco_root, offline_cache, tmp_path):
    """Every input reaches _generate_examples through gen_kwargs, the tasks as a list: num_proc splits them."""

    def generated(num_proc: int | None, name: str):
        builder = KeypointInstruct(
            config_name="all",
            cache_dir=str(tmp_path / name),
            coco_root=str(coco_root),
            coco_split=DATASET_SPLIT,
            cache_path=str(offline_cache),
        )
        builder.download_and_prepare(num_proc=num_proc)
        return builder.as_dataset(split="train").data.table

    one, parallel = generated(None, "one"), generated(len(TASKS), "parallel")
    assert parallel.num_rows == one.num_rows > 0
    assert parallel.equals(one)  # jobs in task order, each task's rows in cache order
