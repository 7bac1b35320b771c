"""Benchmark images out of training data: ``build --exclude-bench`` drops them (counted, named in the card), and the
check ``train_sft.py --exclude_bench`` runs refuses a dataset holding one unless its card names that benchmark."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.dataset.exclusion import (
    card_exclusions,
    check_bench_exclusion,
    content_id,
    dataset_image_ids,
    read_bench_images,
)
from keypoint_instruct.errors import InputNotFoundError, TrainingConfigError

SPLIT = "val2014"


def write_bench(folder, image_ids, split=SPLIT):
    """A benchmark folder as far as exclusion reads one: its questions and meta."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"question_id": f"conversation-{i}", "image_id": i}) for i in image_ids]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "meta.json").write_text(json.dumps({"name": "HPAUB", "coco_split": split}))
    return folder


def test_the_content_id_is_the_set_of_images():
    assert content_id([3, 1, 2]) == content_id([1, 2, 3, 3]) != content_id([1, 2])
    assert len(content_id([1])) == 16


def test_a_benchmark_is_read_by_its_images(tmp_path):
    bench = read_bench_images(write_bench(tmp_path / "b", [7, 5, 7]))
    assert bench.image_ids == {5, 7} and bench.coco_split == SPLIT and bench.content_id == content_id([5, 7])
    with pytest.raises(InputNotFoundError, match="not a benchmark folder"):
        read_bench_images(tmp_path)


@pytest.fixture(scope="module")
def built(coco_root, tmp_path_factory):
    """A real benchmark drawn from val2014 and a cache of offline answers for all of val2014, the benchmark's
    images among them (one cache for both, as the README's flow has it)."""
    root = tmp_path_factory.mktemp("exclude")
    cache = root / "teacher.sqlite"
    bench = ["bench", "build", "--coco-root", str(coco_root), "--split", SPLIT, "--teacher", "offline"]
    assert main([*bench, "--cache", str(cache), "--out", str(root / "hpaub"), "--images", "3"]) == 0
    generate = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(coco_root)]
    assert main([*generate, "--split", SPLIT, "--cache", str(cache)]) == 0
    return root, cache, root / "hpaub"


def build(coco_root, cache, out, *extra):
    argv = ["build", "--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--out", str(out)]
    return main([*argv, "--version", "1.0.0", *extra])


def test_build_exclude_bench_drops_the_benchmarks_images_and_says_so(coco_root, built, tmp_path, capsys):
    root, cache, hpaub = built
    bench = read_bench_images(hpaub)
    assert json.loads((hpaub / "meta.json").read_text())["content_id"] == bench.content_id
    assert build(coco_root, cache, tmp_path / "all") == 0
    assert bench.image_ids <= dataset_image_ids(tmp_path / "all")  # the draw's images are in the cache's answers
    capsys.readouterr()
    assert build(coco_root, cache, tmp_path / "clean", "--exclude-bench", str(hpaub)) == 0
    assert "benchmark images left out" in capsys.readouterr().out
    assert not dataset_image_ids(tmp_path / "clean") & bench.image_ids
    assert dataset_image_ids(tmp_path / "clean") == dataset_image_ids(tmp_path / "all") - bench.image_ids
    card = (tmp_path / "clean" / "README.md").read_text()
    assert f"| `benchmark_image` | {3 * len(bench.image_ids)} |" in card  # one answer per task and image
    assert f"HPAUB `{bench.content_id}` ({len(bench.image_ids)} `{SPLIT}` images" in card
    assert card_exclusions(card) == [bench.record()]
    assert card_exclusions((tmp_path / "all" / "README.md").read_text()) == []
    rows = pq.read_table(sorted((tmp_path / "clean" / "all").glob("*.parquet"))).to_pylist()
    assert rows and not {r["image_id"] for r in rows} & bench.image_ids

    assert build(coco_root, cache, tmp_path / "x", "--exclude-bench", str(tmp_path)) == 2
    assert "not a benchmark folder" in capsys.readouterr().err


def test_the_training_check_refuses_shared_images_unless_the_card_names_the_benchmark(coco_root, built, tmp_path):
    root, cache, hpaub = built
    assert build(coco_root, cache, tmp_path / "all") == 0
    assert build(coco_root, cache, tmp_path / "clean", "--exclude-bench", str(hpaub)) == 0
    ids = dataset_image_ids(tmp_path / "all")
    card = (tmp_path / "all" / "README.md").read_text()
    with pytest.raises(TrainingConfigError, match=f"holds 3 of the 3 images of benchmark {hpaub}") as err:
        check_bench_exclusion("all", ids, card, [hpaub])
    assert "--exclude-bench" in str(err.value)
    clean_card = (tmp_path / "clean" / "README.md").read_text()
    check_bench_exclusion("clean", dataset_image_ids(tmp_path / "clean"), clean_card, [hpaub])
    check_bench_exclusion("named", ids, clean_card, [hpaub])  # the card says it was excluded: trusted by its id
    elsewhere = write_bench(tmp_path / "copy", read_bench_images(hpaub).image_ids)  # same images, another path
    check_bench_exclusion("clean", ids, clean_card, [elsewhere])
    other = write_bench(tmp_path / "other", [min(ids)])  # another benchmark: its image is in the data
    with pytest.raises(TrainingConfigError, match="holds 1 of the 1 images"):
        check_bench_exclusion("clean", ids, clean_card, [other])
