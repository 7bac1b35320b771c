"""``bench build`` never draws a training image: COCO's training splits under the root, and --exclude-training.

The ``coco_years`` fixture is COCO's situation in small: train2017 reuses most of val2014's image ids (36 of 48) and
val2017 holds the rest, so a val2014 benchmark drawn blindly is mostly made of train2017 images.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from keypoint_instruct.bench.build import eligible_scenes
from keypoint_instruct.bench.decontam import report_header
from keypoint_instruct.bench.judge import JudgeResult
from keypoint_instruct.bench.layout import load_bench
from keypoint_instruct.bench.report import build_report, render_markdown
from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.splits import read_image_ids
from tests.bench.test_report import MODEL_A, make_result


def bench_build(coco_root, tmp_path, out, *extra, split="val2014"):
    args = ["bench", "build", "--coco-root", str(coco_root), "--split", split, "--teacher", "offline"]
    args += ["--cache", str(tmp_path / "teacher.sqlite"), "--out", str(tmp_path / out), *extra]
    return main(args)


def drawn(bench_dir) -> set[int]:
    return set(load_bench(bench_dir).contexts)


@pytest.fixture(scope="module")
def train2017(coco_years) -> frozenset[int]:
    return read_image_ids(coco_years / "annotations" / "instances_train2017.json")


def test_a_val2014_benchmark_never_draws_a_train2017_image(coco_years, train2017, tmp_path, capsys):
    eligible = {s.image_id for s in eligible_scenes(load_scenes(coco_years, "val2014").values(), min_keypoints=8)}
    clean = eligible - train2017
    assert len(eligible & train2017) > len(clean) >= 5  # most candidates are training images, as in COCO
    assert bench_build(coco_years, tmp_path, "clean", "--images", "5") == 0
    assert drawn(tmp_path / "clean") <= clean
    out = capsys.readouterr().out
    assert f"training images: {len(eligible & train2017)} of {len(eligible)} candidate images were training" in out
    assert "sources: COCO `annotations/captions_train2017.json`, 36 images" in out
    meta = json.loads((tmp_path / "clean" / "meta.json").read_text())
    record = meta["decontamination"]
    assert record["allow_training_overlap"] is False and "never drawn" in record["rule"]
    assert record["sources"] == [{"kind": "coco_split", "path": "annotations/captions_train2017.json", "images": 36}]
    assert (record["candidates"], record["candidates_in_training"]) == (len(eligible), len(eligible & train2017))
    assert len(meta["content_id"]) == 16
    card = (tmp_path / "clean" / "hub" / "README.md").read_text()
    assert "could not be drawn" in card and "temperature 0.2, max_tokens 1024, seed 42" in card

    # The same draw with the overlap allowed takes training images: what the rule prevents.
    assert bench_build(coco_years, tmp_path, "blind", "--images", "5", "--allow-training-overlap") == 0
    blind = drawn(tmp_path / "blind")
    assert blind & train2017
    record = json.loads((tmp_path / "blind" / "meta.json").read_text())["decontamination"]
    assert record["allow_training_overlap"] is True and record["drawn_in_training"] == len(blind & train2017)


def test_a_benchmark_built_with_the_overlap_allowed_says_so_in_every_report(coco_years, tmp_path):
    assert bench_build(coco_years, tmp_path, "blind", "--images", "3", "--allow-training-overlap") == 0
    meta = json.loads((tmp_path / "blind" / "meta.json").read_text())
    result = dataclasses.replace(make_result("m", MODEL_A), bench_meta=meta)
    header = report_header([result])
    assert len(header) == 2 and "--allow-training-overlap" in header[0] and "3 of its images" in header[0]
    report = render_markdown(build_report([result], resamples=10), [result], None, 10)
    assert report.index(header[0]) < report.index("## Score")
    clean = JudgeResult("m", "offline-overlap", "offline-overlap", "r1", "b", {"decontamination": {}}, ())
    assert report_header([clean]) == [] and report_header([JudgeResult("m", "j", "j", "r", "b", {}, ())]) == []


def test_exclude_training_leaves_out_the_images_of_a_cache_or_a_dataset(coco_years, train2017, tmp_path, capsys):
    """The images a training run used may come from another root or split: a dataset folder or a response cache
    names them. Here the training answers are about val2017 images, which are val2014 images too."""
    cache = tmp_path / "training.sqlite"
    generate = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(coco_years)]
    assert main([*generate, "--split", "val2017", "--cache", str(cache), "--limit", "3"]) == 0
    with_answers = {s.image_id for s in load_scenes(coco_years, "val2017").values()}
    assert bench_build(coco_years, tmp_path, "b", "--images", "3", "--exclude-training", str(cache)) == 0
    record = json.loads((tmp_path / "b" / "meta.json").read_text())["decontamination"]
    [coco, answers] = record["sources"]
    assert coco["kind"] == "coco_split" and answers == {"kind": "cache", "path": str(cache), "images": 3}
    excluded = train2017 | _answered(cache)
    assert not drawn(tmp_path / "b") & excluded and _answered(cache) <= with_answers

    dataset = tmp_path / "dataset"
    build = ["build", "--coco-root", str(coco_years), "--split", "val2017", "--cache", str(cache)]
    assert main([*build, "--out", str(dataset), "--version", "1.0.0"]) == 0
    capsys.readouterr()
    assert bench_build(coco_years, tmp_path, "d", "--images", "3", "--exclude-training", str(dataset)) == 0
    record = json.loads((tmp_path / "d" / "meta.json").read_text())["decontamination"]
    assert record["sources"][1]["kind"] == "dataset" and not drawn(tmp_path / "d") & excluded

    assert bench_build(coco_years, tmp_path, "x", "--exclude-training", str(tmp_path / "none")) == 2
    assert "--exclude-training" in capsys.readouterr().err


def _answered(cache) -> set[int]:
    from keypoint_instruct.llm.store.cache import ResponseCache

    with ResponseCache(cache) as opened:
        return set().union(*opened.image_ids(["conversation"]).values())


def test_too_few_clean_images_and_a_training_split_are_one_line(coco_years, tmp_path, capsys):
    assert bench_build(coco_years, tmp_path, "x", "--images", "30") == 2
    err = capsys.readouterr().err
    assert "after leaving out" in err and "30 asked" in err and "Traceback" not in err
    assert bench_build(coco_years, tmp_path, "x", "--images", "3", split="train2017") == 2
    err = capsys.readouterr().err
    assert "train2017 is a COCO training split" in err and "--allow-training-overlap" in err


def test_a_rebuild_that_would_draw_other_images_is_refused_without_overwrite(coco_years, tmp_path, capsys):
    """A folder built with the overlap allowed holds training images; building it again with the rule draws others,
    and the answers and results made for the old questions would no longer fit."""
    assert bench_build(coco_years, tmp_path, "b", "--images", "5", "--allow-training-overlap") == 0
    assert bench_build(coco_years, tmp_path, "b", "--images", "5") == 2
    assert "images drawn" in capsys.readouterr().err
    assert bench_build(coco_years, tmp_path, "b", "--images", "5", "--overwrite") == 0
