"""keypoint_instruct/dataset/folder.py: the Hub-layout folder `keypoint-instruct build` writes."""

from __future__ import annotations

import json
import subprocess
import sys

from keypoint_instruct.dataset.builder import features
from keypoint_instruct.dataset.folder import build_folder, write_shards
from keypoint_instruct.vocab import DATASET_CONFIGS, TASKS
from tests.fixtures_dataset import DATASET_SPLIT

FRESH_LOAD = """
import json, sys
from datasets import get_dataset_config_names, load_dataset
folder = sys.argv[1]
out = {}
for name in get_dataset_config_names(folder):
    ds = load_dataset(folder, name, split="train")
    out[name] = {"rows": ds.num_rows, "features": ds.features.to_dict(), "tasks": sorted(set(ds["task"]))}
out["<default>"] = {"rows": load_dataset(folder, split="train").num_rows}
print(json.dumps(out))
"""


def test_every_config_loads_in_a_fresh_process(dataset_dir):
    result = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, str(dataset_dir)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(loaded) == {*DATASET_CONFIGS, "<default>"}
    expected = features(embed_images=False).to_dict()
    for name in DATASET_CONFIGS:
        assert loaded[name]["features"] == expected, name
        assert loaded[name]["rows"] > 0, name
    for task in TASKS:
        assert loaded[task]["tasks"] == [task]
    parts = sum(loaded[task]["rows"] for task in TASKS)
    assert loaded["all"]["rows"] == parts == loaded["<default>"]["rows"]


def test_same_inputs_give_byte_identical_parquet(coco_root, offline_cache, tmp_path):
    kwargs = dict(coco_root=coco_root, coco_split=DATASET_SPLIT, cache_path=offline_cache, version="2.1.0")
    build_folder(out=tmp_path / "a", **kwargs)
    build_folder(out=tmp_path / "b", **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert len(files) == 4
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_embedded_images_decode(coco_root, offline_cache, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "embedded"
    build_folder(
        coco_root=coco_root,
        coco_split=DATASET_SPLIT,
        cache_path=offline_cache,
        out=out,
        version="1.0.0",
        embed_images=True,
    )
    ds = load_dataset(str(out), "complex_reasoning", split="train")
    row = ds[0]
    image = row["images"][0]
    from PIL import Image

    with Image.open(coco_root / DATASET_SPLIT / row["file_name"]) as original:
        assert image.size == original.size


def test_multi_turn_build_has_one_conversation_row_per_image(coco_root, offline_cache, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "multi"
    build_folder(
        coco_root=coco_root,
        coco_split=DATASET_SPLIT,
        cache_path=offline_cache,
        out=out,
        version="1.0.0",
        conversation_turns="multi",
    )
    ds = load_dataset(str(out), "conversation", split="train")
    assert len(set(ds["image_id"])) == ds.num_rows
    assert max(len(m) for m in ds["messages"]) > 2
    assert "all kept questions about one image" in (out / "README.md").read_text()


def test_large_configs_are_sharded_by_size(coco_root, offline_cache, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "sharded"
    summaries, _ = build_folder(
        coco_root=coco_root,
        coco_split=DATASET_SPLIT,
        cache_path=offline_cache,
        out=out,
        version="1.0.0",
        max_shard_bytes=20_000,
    )
    rows = {s.name: s.num_examples for s in summaries}
    shards = sorted(p.name for p in (out / "all").glob("*.parquet"))
    assert len(shards) > 1 and shards[0] == f"train-00000-of-{len(shards):05d}.parquet"
    assert load_dataset(str(out), "all", split="train").num_rows == rows["all"]


def test_no_shard_is_empty_when_rows_are_few_and_large(tmp_path):
    """Five big rows over four shards' worth of bytes: two per shard fill three shards, and the names say 3."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"blob": [b"x" * 1000] * 5})
    paths = write_shards(table, tmp_path / "all", max_shard_bytes=table.nbytes // 4 + 1, row_group_size=100)
    counts = [pq.read_metadata(p).num_rows for p in paths]
    assert sum(counts) == 5 and 0 not in counts, counts
    assert [p.name for p in paths] == [f"train-{i:05d}-of-{len(paths):05d}.parquet" for i in range(len(paths))]
