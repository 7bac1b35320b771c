"""The review folder: pages, pictures, counts, sections, paging and sampling, and what --out may hold."""

from __future__ import annotations

import logging
import re
import shutil

import pytest

from keypoint_instruct.errors import UsageError
from keypoint_instruct.review.collect import Filters
from keypoint_instruct.review.page import write_review
from tests.fixtures_dataset import DATASET_SPLIT
from tests.pages import mixed_cache


@pytest.fixture(scope="module")
def mixed(offline_cache, tmp_path_factory):
    return mixed_cache(offline_cache, tmp_path_factory.mktemp("mixed") / "mixed.sqlite")


@pytest.fixture(scope="module")
def folder(coco_root, mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("review") / "review"
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], out)
    return out, result


def _section(page: str, image_id: int) -> str:
    start = page.index(f'<section class="image" id="image-{image_id}">')
    return page[start : page.index("</section>", start)]


def test_one_page_with_every_image_and_its_picture(folder):
    out, result = folder
    page = (out / "index.html").read_text()
    ids = re.findall(r'<section class="image" id="image-(\d+)">', page)
    assert len(ids) == result.shown == len(result.summary.images) and result.pages == [out / "index.html"]
    for image_id in ids:
        assert f'src="images/{image_id}.jpg"' in page
        assert (out / "images" / f"{image_id}.jpg").stat().st_size > 1000
    assert '<meta name="generator" content="keypoint-instruct review">' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_counts_per_reason_at_the_top(folder):
    page = (folder[0] / "index.html").read_text()
    top = page[: page.index('<main id="images">')]
    assert re.search(r"<code>superseded</code></td><td class='n'>5</td>", top)
    assert re.search(r"<code>names_source</code></td><td class='n'>2</td>", top)
    assert 'data-set-reason="refusal"' in top
    unused = ("truncated", "content_filter", "empty", "leak_angle", "leak_notes", "leak_skeleton", "leak_visibility")
    unused += ("leak_person_label", "pose_contradiction", "benchmark_image")
    none = ", ".join(f"<code>{code}</code>" for code in unused)
    assert f"No drops for: {none}." in top
    assert "<b>gpt-4o-2024-08-06</b> (5)" in top and "<b>offline-posefacts</b>" in top
    assert "This cache holds answers of 2 teacher models. <code>build</code> refuses it" in top


def test_one_teachers_answers_alone(coco_root, mixed, tmp_path):
    only = Filters(teacher_models=("offline-posefacts",))
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], tmp_path / "r", filters=only)
    page = result.pages[0].read_text()
    assert "gpt-4o-2024-08-06" not in page and "teacher models." not in page
    assert {k: v for k, v in result.summary.by_reason().items() if v} == {}  # the offline teacher's answers all keep


def test_a_leaky_conversation_shows_each_question_decided_and_highlighted(folder, mixed):
    section = _section((folder[0] / "index.html").read_text(), mixed[1]["leaky"])
    conversation = section[: section.index('data-task="detailed_description"')]
    assert conversation.count('class="unit dropped"') == 4 and conversation.count('class="unit kept"') == 1
    assert '<mark class="leak" title="coordinate_leakage: ' in section and ">[0.42, 0.31]</mark>" in section
    assert ">keypoints</mark>" in section and ">cannot see the image</mark>" in section
    assert "&lt;b&gt;not&lt;/b&gt;" in section  # the teacher's text is escaped, never markup
    assert 'data-task="conversation" data-status="dropped" data-reason="repeated_question"' in section
    assert "teacher <b>gpt-4o-2024-08-06</b> · prompt scripted-v1 (not today's prompts)" in section
    assert "100 prompt tokens + 40 completion · $0.0010 · finish stop" in section
    # the superseded offline answer is there, folded away
    assert '<article class="entry superseded" data-task="conversation">' in section
    assert "<details><summary>the superseded answer" in section


def test_the_context_is_the_one_the_teacher_saw(folder, mixed, coco_root):
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.context import format_context
    from keypoint_instruct.review.html import esc

    section = _section((folder[0] / "index.html").read_text(), mixed[1]["truncated"])
    scene = load_scenes(coco_root, DATASET_SPLIT)[mixed[1]["truncated"]]
    assert "Context the teacher saw <small>(mode paper)</small>" in section
    for block in format_context(scene, "paper").split("\n\n"):
        assert esc(block) in section
    assert 'data-reason="superseded"' in section and 'class="badge dropped"' in section


def test_pages_and_sampling(coco_root, mixed, tmp_path):
    out = tmp_path / "paged"
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], out, per_page=4, limit=9)
    assert [p.name for p in result.pages] == ["index.html", "page-2.html", "page-3.html"]
    assert (result.shown, result.matching) == (9, len(result.summary.images))
    first = (out / "index.html").read_text()
    assert "are shown, sampled per reason" in first and "This page: images 1 to 4 of 9." in first
    assert '<a class="page" href="page-2.html">2</a>' in first and "<b>1</b>" in first
    assert first.count('<section class="image"') == 4
    assert (out / "page-3.html").read_text().count('<section class="image"') == 1
    # a rerun into the same folder replaces it, leaving no stale page behind
    write_review(coco_root, DATASET_SPLIT, mixed[0], out, per_page=50, limit=9)
    assert sorted(p.name for p in out.glob("*.html")) == ["index.html"]
    assert len(list((out / "images").glob("*.jpg"))) == 9


def test_filters_on_the_command_line_choose_the_images(coco_root, mixed, tmp_path):
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], tmp_path / "r", filters=Filters(reason="refusal"))
    assert result.shown == 1
    page = result.pages[0].read_text()
    assert '<option value="refusal" selected>refusal</option>' in page  # the page opens filtered the same way
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], tmp_path / "d", filters=Filters(only="dropped"))
    assert result.shown == 5
    result = write_review(coco_root, DATASET_SPLIT, mixed[0], tmp_path / "e", filters=Filters(reason="empty"))
    assert result.shown == 0 and "No image matches the filters." in result.pages[0].read_text()


def test_out_must_be_new_empty_or_a_review_folder(coco_root, mixed, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"holds other files \(notes.txt\)"):
        write_review(coco_root, DATASET_SPLIT, mixed[0], other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        write_review(coco_root, DATASET_SPLIT, mixed[0], tmp_path / "file")
    with pytest.raises(UsageError, match="no responses for split 'val2014'"):
        write_review(coco_root, "val2014", mixed[0], tmp_path / "v")


def test_a_missing_image_file_is_a_note_not_a_broken_picture(coco_copy, mixed, tmp_path, caplog):
    shutil.rmtree(coco_copy / DATASET_SPLIT)
    with caplog.at_level(logging.WARNING):
        result = write_review(coco_copy, DATASET_SPLIT, mixed[0], tmp_path / "r", limit=3)
    page = result.pages[0].read_text()
    assert "<img" not in page and page.count('<div class="pic missing"><p>No picture: image file') == 3
    assert result.missing_pictures == 3 and "3 of 3 images have no picture" in caplog.text
