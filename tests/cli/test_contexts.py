"""``contexts`` and ``show`` through the real command line: output, options, and the bad-input matrix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import annotation_file, load_scenes
from keypoint_instruct.coco.context import format_context, select_scenes
from tests.paths import REALPOSES, REPO, SNAPSHOTS
from tests.snapshot_check import check_snapshot

# the real-pose tree beside the checkout: ../shared/realposes from a clone, ../../shared/realposes from a worktree
REAL_TREE = next((p for p in (REALPOSES, REPO.parent.parent / "shared" / "realposes") if p.is_dir()), None)

CLI = [sys.executable, "-m", "keypoint_instruct"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_contexts_to_stdout_matches_the_library(coco_root):
    proc = run_cli("contexts", "--coco-root", str(coco_root), "--split", "val2014", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = select_scenes(load_scenes(coco_root, "val2014"), limit=3)
    assert [r["image_id"] for r in rows] == [s.image_id for s in expected]
    for row, scene in zip(rows, expected, strict=True):
        assert set(row) == {"image_id", "file_name", "coco_split", "width", "height", "num_people", "context"}
        assert row["context"] == format_context(scene)
        assert row["coco_split"] == "val2014" and row["file_name"].startswith("COCO_val2014_")
        assert row["num_people"] == sum(1 for i in scene.instances if i.category == "person" and not i.iscrowd)
    assert "contexts" in proc.stderr  # the progress bar goes to stderr, never into the JSON lines


def test_contexts_options_and_out_file(coco_root, tmp_path, capsys, caplog):
    out = tmp_path / "sub" / "ctx.jsonl"
    args = ["contexts", "--coco-root", str(coco_root), "--split", "train2017", "--out", str(out)]
    assert main([*args, "--min-persons", "0"]) == 0
    assert len(out.read_text().splitlines()) == 24  # every image
    assert main([*args, "--min-keypoints", "8", "--min-persons", "1"]) == 0
    strict = [json.loads(line) for line in out.read_text().splitlines()]
    assert main(args) == 0
    default = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(strict) < len(default) < 24
    with caplog.at_level("WARNING", logger="keypoint_instruct.cli.contexts"):
        assert main([*args, "--min-persons", "50"]) == 0
    assert out.read_text() == "" and "none of the 24 images of train2017 has 50 or more people" in caplog.text
    assert main([*args, "--context", "paper+facts", "--limit", "2"]) == 0
    facts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(facts) == 2
    assert facts[0]["context"].startswith(default[0]["context"] + "\n\n")
    assert capsys.readouterr().out == ""


def test_unicode_and_stray_whitespace_in_captions_reach_the_jsonl_intact(coco_copy, tmp_path):
    path = annotation_file(coco_copy, "train2017", "captions")
    data = json.loads(path.read_text())
    first = data["annotations"][0]
    first["caption"] = " Un skieur à Zürich\u00a0– “en piste”\n\n "
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "ctx.jsonl"
    code = main(
        ["contexts", "--coco-root", str(coco_copy), "--split", "train2017", "--min-persons", "0", "--out", str(out)]
    )
    assert code == 0
    rows = {row["image_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert "Un skieur à Zürich – “en piste”" in rows[first["image_id"]]["context"].splitlines()


@pytest.mark.parametrize("tree", ["fixture/val2014", "fixture/train2017", "realposes/val2017"])
def test_jsonl_of_every_image_is_byte_identical_to_the_snapshot(coco_root, tmp_path, tree):
    # the whole file, every image (--min-persons 0), in the paper's format: a faster loader must write these bytes
    name, split = tree.split("/")
    root = coco_root if name == "fixture" else REAL_TREE
    if root is None:
        pytest.skip("the real-pose tree (shared/realposes) is not beside this checkout")
    out = tmp_path / "ctx.jsonl"
    assert main(["contexts", "--coco-root", str(root), "--split", split, "--min-persons", "0", "--out", str(out)]) == 0
    text = out.read_bytes().decode("utf-8")
    check_snapshot(SNAPSHOTS / "contexts" / f"cli-{name}-{split}.jsonl", text, f"contexts JSONL of {tree}")


def test_forked_workers_write_the_same_lines_in_the_same_order(coco_root, tmp_path, monkeypatch):
    import keypoint_instruct.cli.contexts as contexts

    monkeypatch.setattr(contexts, "_CHUNK", 5)  # several chunks even on the small fixture
    files = {}
    for workers in ("1", "2"):
        for mode in ("paper", "paper+facts"):
            out = tmp_path / f"w{workers}-{mode}.jsonl"
            args = ["contexts", "--coco-root", str(coco_root), "--split", "val2014", "--context", mode]
            assert main([*args, "--workers", workers, "--min-persons", "0", "--out", str(out)]) == 0
            files[workers, mode] = out.read_bytes()
    for mode in ("paper", "paper+facts"):
        assert files["1", mode] == files["2", mode]
        assert len(files["1", mode].splitlines()) == len(load_scenes(coco_root, "val2014"))


def test_a_large_selection_without_workers_picks_its_workers_itself(coco_root, tmp_path, monkeypatch):
    # the default --workers is chosen from the CPU count for selections of PARALLEL_FROM images or more (every
    # real train2017 run): that path must run, and write what one worker writes
    import keypoint_instruct.cli.contexts as contexts

    monkeypatch.setattr(contexts, "_CHUNK", 5)
    base = ["contexts", "--coco-root", str(coco_root), "--split", "val2014", "--min-persons", "0"]
    assert main([*base, "--workers", "1", "--out", str(tmp_path / "one.jsonl")]) == 0
    monkeypatch.setattr(contexts, "PARALLEL_FROM", 10)
    assert main([*base, "--out", str(tmp_path / "auto.jsonl")]) == 0
    assert (tmp_path / "auto.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_show_writes_a_png_at_least_the_image_size(coco_root, tmp_path):
    scene = select_scenes(load_scenes(coco_root, "train2017"), min_keypoints=8)[0]
    out = tmp_path / "fig.png"
    args = [str(scene.image_id), "--coco-root", str(coco_root), "--split", "train2017", "--out", str(out)]
    proc = run_cli("show", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    with Image.open(out) as png:
        assert png.format == "PNG"
        assert png.width >= scene.width and png.height >= scene.height


# --- bad input: one line on stderr naming the file or id, exit code 2, no traceback ----------------------------


def _edit(tree: Path, kind: str, change) -> Path:
    path = annotation_file(tree, "train2017", kind)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _set(kind: str, key: str, index: int, field: str, value):
    def change(data):
        data[key][index][field] = value

    return kind, change


# case -> (file, change, text the message must hold, whether it must name the annotation id)
BROKEN = {
    "keypoints not 51": (
        *_set("person_keypoints", "annotations", 2, "keypoints", [1, 2, 2] * 16 + [0, 0]),
        "50 keypoint numbers",
        True,
    ),  # fmt: skip
    "bbox not 4": (*_set("instances", "annotations", 4, "bbox", [1, 2, 3, 4, 5]), "bbox of 5 numbers", True),
    "bbox wrong type": (*_set("instances", "annotations", 1, "bbox", None), "bbox", True),
    "unknown image": (
        *_set("instances", "annotations", 0, "image_id", 999_999_999),
        "unknown image id 999999999",
        True,
    ),  # fmt: skip
    "caption unknown image": (*_set("captions", "annotations", 0, "image_id", 123), "unknown image id 123", True),
    "zero width": (*_set("instances", "images", 0, "width", 0), "width 0", False),
    "negative box": (*_set("instances", "annotations", 3, "bbox", [5, 5, -2, 9]), "negative width", True),
    "not COCO": ("captions", lambda data: data.update(annotations="x"), "not in COCO's schema", False),
    "image listed twice": (
        "instances",
        lambda data: data["images"].append({**data["images"][0], "width": 7}),
        "is listed twice with different records",
        False,
    ),  # fmt: skip
    "annotation id twice": (
        "person_keypoints",
        lambda data: data["annotations"].append(data["annotations"][0]),
        "is used twice",
        True,
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_schema_errors_are_one_line(coco_copy, capsys, case):
    kind, change, needle, names_annotation = BROKEN[case]
    path = _edit(coco_copy, kind, change)
    code = main(["contexts", "--coco-root", str(coco_copy), "--split", "train2017"])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, path.name, needle)
    if names_annotation:
        assert "annotation id " in err


def test_invalid_json_missing_file_and_unknown_split(coco_copy, capsys):
    base = ["contexts", "--coco-root", str(coco_copy), "--split"]
    assert_one_line_error(main([*base, "test2015"]), capsys.readouterr().err, "unknown split 'test2015'")
    path = annotation_file(coco_copy, "train2017", "instances")
    path.write_bytes(path.read_bytes()[:5000])
    assert_one_line_error(main([*base, "train2017"]), capsys.readouterr().err, path.name, "not valid JSON")
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(main([*base, "train2017"]), capsys.readouterr().err, path.name, "not valid JSON")
    path.unlink()
    assert_one_line_error(main([*base, "train2017"]), capsys.readouterr().err, path.name, "missing")
    missing_root = str(coco_copy / "nowhere")
    code = main(["contexts", "--coco-root", missing_root, "--split", "val2014"])
    assert_one_line_error(code, capsys.readouterr().err, missing_root, "does not exist")


def test_compressed_or_misplaced_annotations_through_the_real_cli(coco_copy):
    import gzip

    path = annotation_file(coco_copy, "train2017", "captions")
    path.write_bytes(gzip.compress(path.read_bytes()))
    proc = run_cli("contexts", "--coco-root", str(coco_copy), "--split", "train2017")
    assert_one_line_error(proc.returncode, proc.stderr, path.name, "gzip-compressed: decompress it")
    proc = run_cli("contexts", "--coco-root", str(coco_copy / "annotations"), "--split", "val2014")
    assert_one_line_error(proc.returncode, proc.stderr, "has no annotations/ folder", "pass its parent")
    assert proc.stdout == ""


def test_bad_options_are_one_line(coco_root, tmp_path, capsys):
    base = ["--coco-root", str(coco_root), "--split", "val2014"]
    for argv, needle in [
        (["contexts", *base, "--min-keypoints", "18"], "17 keypoints"),
        (["contexts", *base, "--limit", "0"], "--limit"),
        (["contexts", *base, "--context", "fancy"], "--context"),
        (["show", "1", *base, "--out", str(tmp_path / "x.jpg")], ".png"),
        (["show", "abc", *base, "--out", str(tmp_path / "x.png")], "IMAGE_ID"),
    ]:
        with pytest.raises(SystemExit) as exc:  # argparse errors exit, ours return
            raise SystemExit(main(argv))
        assert_one_line_error(exc.value.code, capsys.readouterr().err, needle)


def test_show_unknown_image_and_missing_jpeg_through_the_real_cli(coco_copy, tmp_path):
    base = ["--coco-root", str(coco_copy), "--split", "train2017", "--out", str(tmp_path / "f.png")]
    proc = run_cli("show", "5", *base)
    assert_one_line_error(proc.returncode, proc.stderr, "image id 5 is not in train2017")
    scene = next(iter(load_scenes(coco_copy, "train2017").values()))
    (coco_copy / "train2017" / scene.file_name).unlink()
    proc = run_cli("show", str(scene.image_id), *base)
    assert_one_line_error(proc.returncode, proc.stderr, scene.file_name, "does not exist")
    assert not (tmp_path / "f.png").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_a_full_disk_is_one_line(coco_root):
    proc = run_cli("contexts", "--coco-root", str(coco_root), "--split", "train2017", "--out", "/dev/full")
    assert_one_line_error(proc.returncode, proc.stderr.splitlines()[-1], "cannot write /dev/full")
    assert "Traceback" not in proc.stderr
