"""``keypoint-instruct review`` as a user runs it: what it prints, its --help, one line and exit 2 on bad input."""

from __future__ import annotations

import pytest

from keypoint_instruct.cli import main
from tests.fixtures_dataset import DATASET_SPLIT
from tests.pages import mixed_cache


@pytest.fixture(scope="module")
def mixed(offline_cache, tmp_path_factory):
    return mixed_cache(offline_cache, tmp_path_factory.mktemp("mixed") / "mixed.sqlite")[0]


def review(coco_root, cache, out, *extra, split=DATASET_SPLIT):
    """The exit status of ``keypoint-instruct review ...`` (argparse's own exits included)."""
    try:
        return run(coco_root, cache, out, *extra, split=split)
    except SystemExit as exit:
        return exit.code


def run(coco_root, cache, out, *extra, split=DATASET_SPLIT):
    argv = ["review", "--coco-root", str(coco_root), "--split", split, "--cache", str(cache), "--out", str(out)]
    return main([*argv, *extra])


def test_review_prints_the_counts_and_where_the_page_is(coco_root, mixed, tmp_path, capsys):
    assert review(coco_root, mixed, tmp_path / "r", "--limit", "6", "--per-page", "4") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "read 71 responses about 22 images; rows kept 124; dropped: unparseable 1, coordinate_leakage 1, "
        "names_source 2, refusal 1, repeated_question 1, superseded 5, extra_pair 1"
    )
    assert out[1] == "showing 6 images (sampled per reason from 22 matching) on 2 page(s)"
    assert out[2] == f"wrote {tmp_path / 'r' / 'index.html'}"
    assert (tmp_path / "r" / "page-2.html").is_file()


def test_task_only_and_reason_choose_what_is_shown(coco_root, mixed, tmp_path, capsys):
    assert review(coco_root, mixed, tmp_path / "r", "--task", "complex_reasoning", "--only", "dropped") == 0
    out = capsys.readouterr().out
    assert "dropped: unparseable 1, superseded 2, extra_pair 1" in out and "showing 2 images on 1 page(s)" in out
    page = (tmp_path / "r" / "index.html").read_text()
    assert 'data-task="conversation"' not in page and 'data-task="complex_reasoning"' in page


def test_help_says_the_limits(capsys):
    with pytest.raises(SystemExit):
        main(["review", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("file://", "--limit", "default 200", "sampled per reason", "--per-page", "default 50", "0.5 MB"):
        assert needle in text


def _one_line(capsys, code, needle):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--reason", "leak"], "argument --reason: invalid choice"),
        (["--only", "kept", "--reason", "refusal"], "select nothing together"),
        (["--limit", "-1"], "expected a number >= 0"),
        (["--per-page", "0"], "expected a number >= 1"),
        (["--task", "captions"], "argument --task: invalid choice"),
    ],
)
def test_bad_options_are_one_line(coco_root, mixed, tmp_path, capsys, extra, needle):
    _one_line(capsys, review(coco_root, mixed, tmp_path / "r", *extra), needle)


def test_bad_inputs_are_one_line(coco_root, mixed, tmp_path, capsys):
    _one_line(capsys, review(coco_root, tmp_path / "none.sqlite", tmp_path / "r"), "none.sqlite")
    _one_line(capsys, review(tmp_path / "nowhere", mixed, tmp_path / "r"), "nowhere")
    _one_line(capsys, review(coco_root, mixed, tmp_path / "r", split="val2014"), "no responses for split 'val2014'")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    _one_line(capsys, review(coco_root, mixed, tmp_path / "full"), "holds other files (x.txt)")
    assert not (tmp_path / "r").exists()  # nothing written on bad input
