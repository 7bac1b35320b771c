from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.vocab import OFFLINE_TEACHER_MODEL
from tests.fixtures_dataset import DATASET_SPLIT, put_response
from tests.paths import REPO

CLI = REPO / ".venv" / "bin" / "keypoint-instruct"


def build_args(coco_root, cache, out, *extra, version="1.0.0"):
    return [
        "build",
        "--coco-root",
        str(coco_root),
        "--split",
        DATASET_SPLIT,
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--version",
        version,
        *extra,
    ]


def one_line_error(capsys, code, *needles):
    """Exit code 2 and one error line; datasets' progress bars (\r-refreshed lines) may precede it."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and "examples/s]" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err
    return err


@pytest.fixture(scope="module")
def filter_cache(coco_root, tmp_path_factory):
    """Good answers plus one response or pair for every filter reason."""
    ids = list(load_scenes(coco_root, DATASET_SPLIT))
    path = tmp_path_factory.mktemp("filters") / "responses.sqlite"
    with ResponseCache(path, create=True) as cache:
        good = "Question: What is he doing?\nAnswer: Jumping.\n===\nQuestion: How are his legs?\nAnswer: Bent."
        put_response(cache, "conversation", ids[0], good)
        put_response(cache, "conversation", ids[1], good + "\nQuestion: What is he doing?\nAnswer: Jumping still.")
        put_response(cache, "conversation", ids[2], "Question: Where is the knee?\nAnswer: Near [0.5, 0.6].")
        put_response(cache, "conversation", ids[3], "Question: What do the captions say?\nAnswer: A jump.")
        put_response(cache, "complex_reasoning", ids[0], "Question: Why jump?\nAnswer: As an AI, I cannot know.")
        put_response(cache, "complex_reasoning", ids[1], "Question: Why?\nAnswer: Because", finish_reason="length")
        put_response(cache, "complex_reasoning", ids[2], "no labels at all")
        put_response(cache, "complex_reasoning", ids[3], "Question: Why crouch?\nAnswer: To spring up.")
        put_response(cache, "detailed_description", ids[0], "")
        put_response(cache, "detailed_description", ids[1], "An older text.", salt="old")
        put_response(cache, "detailed_description", ids[1], "A boy leaps over a puddle.", salt="new")
    return path


def test_build_prints_and_cards_every_filter_reason(coco_root, filter_cache, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(build_args(coco_root, filter_cache, out)) == 0
    printed = capsys.readouterr().out
    card = (out / "README.md").read_text()
    for reason in (
        "truncated",
        "empty",
        "unparseable",
        "coordinate_leakage",
        "names_source",
        "refusal",
        "repeated_question",
        "superseded",
    ):
        assert any(line.split() == [reason, "1"] for line in printed.splitlines()), reason
        assert f"| `{reason}` | 1 |" in card, reason
    assert "| `conversation` | 4 |" in card and "| `all` | 6 |" in card
    assert "Synthetic offline data" not in card and "`scripted-teacher`" in card
    assert "$0.01" in card  # 11 responses at $0.001


def test_offline_build_card_says_it_is_synthetic(dataset_dir):
    card = (dataset_dir / "README.md").read_text()
    assert "Synthetic offline data" in card and "`offline-posefacts`" in card
    assert "112,980" in card  # the paper's counts, for scale


def test_missing_cache(coco_root, tmp_path, capsys):
    code = main(build_args(coco_root, tmp_path / "nope.sqlite", tmp_path / "out"))
    one_line_error(capsys, code, "nope.sqlite")


def test_responses_for_images_not_in_the_split(coco_root, tmp_path, capsys):
    cache_path = tmp_path / "responses.sqlite"
    missing = max(load_scenes(coco_root, DATASET_SPLIT)) + 1000
    with ResponseCache(cache_path, create=True) as cache:
        put_response(cache, "conversation", missing, "Question: Who?\nAnswer: Nobody.")
    code = main(build_args(coco_root, cache_path, tmp_path / "out"))
    one_line_error(capsys, code, str(missing), DATASET_SPLIT)
    assert not (tmp_path / "out").exists()


def test_a_split_the_cache_lacks_is_one_clear_line(coco_root, tmp_path, capsys, caplog):
    cache_path = tmp_path / "responses.sqlite"
    ResponseCache(cache_path, create=True).close()
    code = main(build_args(coco_root, cache_path, tmp_path / "out"))
    one_line_error(capsys, code, f"holds no responses for {DATASET_SPLIT}", "it is empty")
    with ResponseCache(cache_path) as cache:
        put_response(cache, "conversation", 1, "Question: Who?\nAnswer: A skier.", coco_split="val2099")
        put_response(cache, "complex_reasoning", 1, "Question: Why?\nAnswer: Speed.", coco_split="val2099")
    caplog.clear()
    code = main(build_args(coco_root, cache_path, tmp_path / "out"))
    err = one_line_error(capsys, code, f"holds no responses for {DATASET_SPLIT} (it has: val2099 (2 responses))")
    assert "{" not in err  # no raw Python dict
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # no "config has no rows" before it
    assert not (tmp_path / "out").exists()


def test_no_usable_responses_names_the_reasons(coco_root, tmp_path, capsys, caplog):
    cache_path = tmp_path / "responses.sqlite"
    image_id = next(iter(load_scenes(coco_root, DATASET_SPLIT)))
    with ResponseCache(cache_path, create=True) as cache:
        put_response(cache, "conversation", image_id, "Question: Why?\nAnswer: Because", finish_reason="length")
        put_response(cache, "complex_reasoning", image_id, "no labels at all")
    code = main(build_args(coco_root, cache_path, tmp_path / "out"))
    err = one_line_error(capsys, code, "no usable", "read 2")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # the error says it all
    assert "1 truncated" in err and "1 unparseable" in err and "{" not in err, err


def test_non_empty_out_needs_overwrite_and_overwrite_replaces(coco_root, filter_cache, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):
        err = one_line_error(capsys, main(build_args(coco_root, filter_cache, out, *extra)), "notes.txt")
        assert "--overwrite" not in err, err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert main(build_args(coco_root, filter_cache, out)) == 0
    one_line_error(capsys, main(build_args(coco_root, filter_cache, out, version="1.0.1")), "--overwrite")
    assert main(build_args(coco_root, filter_cache, out, "--overwrite", version="1.0.1")) == 0
    assert "(v1.0.1)" in (out / "README.md").read_text()


def test_out_that_is_not_a_dataset_folder_says_so_first(coco_root, filter_cache, tmp_path, capsys, monkeypatch):
    """`--out keypoint_instruct` from the repository root: the package folder is named, --overwrite never offered."""
    monkeypatch.chdir(tmp_path)
    package = tmp_path / "keypoint_instruct"
    package.mkdir()
    for name in ("__init__.py", "builder.py", "cli"):
        (package / name).write_text("")
    for extra in ((), ("--overwrite",)):
        err = one_line_error(
            capsys, main(build_args(coco_root, filter_cache, "keypoint_instruct", *extra)), "__init__.py"
        )
        assert "--overwrite" not in err and "not a dataset folder" in err and "package" in err, err
    assert sorted(p.name for p in package.iterdir()) == ["__init__.py", "builder.py", "cli"]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-rc1", "01.0.0"])
def test_bad_version_string(coco_root, filter_cache, tmp_path, capsys, version):
    code = main(build_args(coco_root, filter_cache, tmp_path / "out", version=version))
    one_line_error(capsys, code, version)


def test_bad_conversation_turns_through_the_real_entry_point(coco_root, filter_cache, tmp_path):
    args = build_args(coco_root, filter_cache, tmp_path / "out", "--conversation-turns", "both")
    result = subprocess.run([str(CLI), *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "both" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_folder_for_push_and_export(tmp_path, capsys):
    one_line_error(capsys, main(["push", str(tmp_path / "x"), "--repo-id", "o/n", "--version", "1.0.0"]), "x")
    code = main(["export-llava", str(tmp_path), "--config", "all", "--out", str(tmp_path / "a.json")])
    one_line_error(capsys, code, "README.md")


def test_dataset_folder_survives_a_failed_overwrite(coco_root, filter_cache, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(build_args(coco_root, filter_cache, out)) == 0
    before = sorted(p.name for p in out.rglob("*"))
    broken = tmp_path / "broken.sqlite"
    shutil.copy(filter_cache, broken)
    with ResponseCache(broken) as cache:
        put_response(cache, "conversation", 10**9, "Question: Who?\nAnswer: Nobody.")
    one_line_error(capsys, main(build_args(coco_root, broken, out, "--overwrite")), str(10**9))
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.building-")]


def test_card_reads_complete_and_its_example_runs(dataset_dir):
    """The card as a visitor reads it: valid YAML with every config, counts that match the files, no placeholder
    left, and a Python example that runs as written."""
    import pyarrow.parquet as pq
    import yaml

    card = (dataset_dir / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    assert "&id" not in front and "*id" not in front  # every config's features written out, no YAML anchors
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-4.0" and meta["task_categories"] and "human-pose" in meta["tags"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["conversation", "detailed_description", "complex_reasoning", "all"]
    assert [n for n, c in configs.items() if c.get("default")] == ["all"]
    for info in meta["dataset_info"]:
        name = info["config_name"]
        rows = sum(pq.read_metadata(f).num_rows for f in (dataset_dir / name).glob("train-*.parquet"))
        assert info["splits"][0]["num_examples"] == rows > 0, name
        assert f"| `{name}` | {rows:,} |" in body, name
    for leftover in ("${", "REPO_ID", "TODO", "unknown"):
        assert leftover not in body, leftover
    for heading in ("## Configs", "## How it was made", "## Row format", "## Use it", "## License", "## Citation"):
        assert heading in body, heading
    example = body.split("```python\n", 1)[1].split("```", 1)[0]
    assert f'load_dataset("{dataset_dir}", "complex_reasoning"' in example
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'role': 'user'" in result.stdout and "'type': 'image'" in result.stdout


def test_unwritable_outputs_and_broken_cards_are_one_line(coco_root, filter_cache, dataset_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    one_line_error(capsys, main(build_args(coco_root, filter_cache, blocker / "ds")), "a-file")
    code = main(["export-llava", str(dataset_dir), "--config", "all", "--out", str(blocker / "x.json")])
    one_line_error(capsys, code, "a-file")
    code = main(["export-llava", str(dataset_dir), "--config", "all", "--out", str(tmp_path)])
    one_line_error(capsys, code, "directory")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "README.md").write_text("---\nconfigs: [\n---\n# half a card\n")
    code = main(["push", str(broken), "--repo-id", "o/n", "--version", "1.0.0", "--dry-run"])
    one_line_error(capsys, code, "YAML")
    code = main(["export-llava", str(broken), "--config", "all", "--out", str(tmp_path / "y.json")])
    one_line_error(capsys, code, "YAML")


def two_runs(coco_root, path, *runs):
    """A cache of complex reasoning answers from runs made one after the other: each run is (number of images,
    answer, put_response keywords) and answers the first images of the split."""
    ids = list(load_scenes(coco_root, DATASET_SPLIT))
    with ResponseCache(path, create=True) as cache:
        for n, answer, kwargs in runs:
            for image_id in ids[:n]:
                put_response(cache, "complex_reasoning", image_id, f"Question: Why?\nAnswer: {answer}", **kwargs)
    return path


@pytest.fixture(scope="module")
def two_teacher_cache(coco_root, tmp_path_factory):
    """Paid GPT-4o answers for three images, then the offline teacher's for the same three and one more: the
    offline answers are the newest."""
    path = tmp_path_factory.mktemp("two_teachers") / "responses.sqlite"
    return two_runs(coco_root, path, (3, "Paid.", {"model": "gpt-4o"}), (4, "Free.", {"model": OFFLINE_TEACHER_MODEL}))


def _rows(folder, config="all"):
    import pyarrow.parquet as pq

    return pq.read_table(sorted((folder / config).glob("train-*.parquet"))).to_pylist()


def test_a_cache_of_two_teacher_models_is_not_mixed_silently(coco_root, two_teacher_cache, tmp_path, capsys):
    """Newest-wins across models replaced paid GPT-4o answers with the offline teacher's: refused, naming both."""
    code = main(build_args(coco_root, two_teacher_cache, tmp_path / "out"))
    one_line_error(capsys, code, "gpt-4o: 3", f"{OFFLINE_TEACHER_MODEL}: 4", "--teacher-model")
    assert not (tmp_path / "out").exists()


def test_teacher_model_picks_the_responses_built(coco_root, two_teacher_cache, tmp_path, capsys):
    out = tmp_path / "paid"
    assert main(build_args(coco_root, two_teacher_cache, out, "--teacher-model", "gpt-4o")) == 0
    rows = _rows(out)
    assert len(rows) == 3 and {r["teacher_model"] for r in rows} == {"gpt-4o"}
    card = (out / "README.md").read_text()
    assert "Synthetic offline data" not in card and OFFLINE_TEACHER_MODEL not in card and "superseded` | 0 |" in card
    assert "Teacher responses read: 3;" in card

    code = main(build_args(coco_root, two_teacher_cache, tmp_path / "x", "--teacher-model", "gpt-5"))
    one_line_error(capsys, code, "gpt-5", "gpt-4o: 3", f"{OFFLINE_TEACHER_MODEL}: 4")


def test_card_names_the_teachers_of_the_rows_written(coco_root, two_teacher_cache, tmp_path):
    """Both models on purpose: the newer offline answers supersede the paid ones, and the card says that every
    row is the offline teacher's (it said 'gpt-4o, offline-posefacts')."""
    out = tmp_path / "both"
    extra = ("--teacher-model", "gpt-4o", "--teacher-model", OFFLINE_TEACHER_MODEL)
    assert main(build_args(coco_root, two_teacher_cache, out, *extra)) == 0
    assert {r["teacher_model"] for r in _rows(out)} == {OFFLINE_TEACHER_MODEL}
    card = (out / "README.md").read_text()
    teachers = next(line for line in card.splitlines() if line.startswith("- Teacher model(s):"))
    assert f"`{OFFLINE_TEACHER_MODEL}` (4 samples)" in teachers and "gpt-4o" not in teachers
    assert "superseded` | 3 |" in card and "Teacher responses read: 7;" in card


def test_card_commands_work_for_a_folder_path_with_spaces(coco_root, filter_cache, tmp_path):
    import shlex

    from keypoint_instruct.dataset.card import card_for_repo

    out = tmp_path / "my data" / "kpi v1"
    assert main(build_args(coco_root, filter_cache, out)) == 0
    card = (out / "README.md").read_text()

    def dataset_name(text):
        bash = text.split("```bash\n", 1)[1].split("```", 1)[0]
        words = shlex.split(bash.replace("\\\n", " "))
        return words[words.index("--dataset_name") + 1]

    assert dataset_name(card) == str(out)
    assert dataset_name(card_for_repo(card, "org/kpi")) == "org/kpi"


def test_images_missing_under_the_coco_root_are_warned_about(coco_root, filter_cache, tmp_path, caplog):
    """A path-only build needs no image, but training does: say how many the rows point to are not there."""
    import pyarrow.parquet as pq

    bare = tmp_path / "coco"
    shutil.copytree(coco_root / "annotations", bare / "annotations")
    (bare / DATASET_SPLIT).mkdir()
    with caplog.at_level("WARNING"):
        assert main(build_args(coco_root, filter_cache, tmp_path / "full")) == 0
    assert not [r for r in caplog.records if "images the rows refer to" in r.getMessage()]
    names = set(pq.read_table(tmp_path / "full" / "all", columns=["file_name"]).column("file_name").to_pylist())
    kept = sorted(names)[0]
    shutil.copy(coco_root / DATASET_SPLIT / kept, bare / DATASET_SPLIT / kept)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(build_args(bare, filter_cache, tmp_path / "bare")) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    warnings = [w for w in warnings if "have no response" not in w]  # filter_cache answers 4 images: said apart
    assert len(warnings) == 1, warnings
    assert f"{len(names) - 1} of the {len(names)} images" in warnings[0] and str(bare / DATASET_SPLIT) in warnings[0]


def test_a_cache_of_failures_only_says_so(coco_root, tmp_path, capsys):
    """Every request failed (a wrong endpoint, an outage): not an 'empty' cache, and the way on is to rerun."""
    from keypoint_instruct.llm.request import ChatRequest

    cache_path = tmp_path / "responses.sqlite"
    with ResponseCache(cache_path, create=True) as cache:
        for image_id in (1, 2):
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": str(image_id)}]}
            request = ChatRequest("conversation", image_id, DATASET_SPLIT, "v1", body)
            cache.record_failure(request, "HTTP 500 server_error")
    code = main(build_args(coco_root, cache_path, tmp_path / "out"))
    err = one_line_error(capsys, code, f"holds no responses for {DATASET_SPLIT}", "2 failed requests", "generate")
    assert "it is empty" not in err


@pytest.fixture(scope="module")
def two_prompt_cache(coco_root, tmp_path_factory):
    """Complex reasoning for four images with prompt version p1, then for two of them with p2 (newer)."""
    path = tmp_path_factory.mktemp("two_prompts") / "responses.sqlite"
    return two_runs(coco_root, path, (4, "One.", {"prompt_version": "p1"}), (2, "Two.", {"prompt_version": "p2"}))


def test_rows_of_one_task_from_two_prompt_versions_are_warned_about_and_carded(
    coco_root, two_prompt_cache, tmp_path, caplog
):
    out = tmp_path / "mixed"
    with caplog.at_level("WARNING"):
        assert main(build_args(coco_root, two_prompt_cache, out)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "complex_reasoning" in w and "p1 (an earlier prompt): 2" in w and "p2 (an earlier prompt): 2" in w
        for w in warnings
    ), warnings
    card = (out / "README.md").read_text()
    versions = next(line for line in card.splitlines() if line.startswith("- Prompt version(s):"))
    assert "`complex_reasoning`: `p1` (2 samples), `p2` (2 samples)" in versions


def test_prompt_version_picks_the_responses_built(coco_root, two_prompt_cache, tmp_path, capsys, caplog):
    out = tmp_path / "p1"
    with caplog.at_level("WARNING"):
        assert main(build_args(coco_root, two_prompt_cache, out, "--prompt-version", "p1")) == 0
    assert not [r for r in caplog.records if "prompt version" in r.getMessage()]
    rows = _rows(out)
    assert len(rows) == 4 and {r["prompt_version"] for r in rows} == {"p1"}
    assert "superseded` | 0 |" in (out / "README.md").read_text()
    code = main(build_args(coco_root, two_prompt_cache, tmp_path / "x", "--prompt-version", "p9"))
    one_line_error(capsys, code, "p9", "p1: 4", "p2: 2")


def test_answers_of_two_context_modes_are_refused_unless_context_picks_one(coco_root, tmp_path, capsys):
    """Issue 13: a cache with paper and paper+facts answers for the same images built from whichever came last,
    silently. Refused, naming the counts; --context builds one mode, and the card names it."""
    from keypoint_instruct.teacher.templates import load_prompt

    paper, facts = (load_prompt("complex_reasoning", mode).version for mode in ("paper", "paper+facts"))
    path = two_runs(
        coco_root,
        tmp_path / "r.sqlite",
        (3, "One.", {"prompt_version": paper}),
        (1, "Two.", {"prompt_version": facts}),
    )
    code = main(build_args(coco_root, path, tmp_path / "mixed"))
    one_line_error(capsys, code, "several context modes", "paper: 3", "paper+facts: 1", "--context")
    assert not (tmp_path / "mixed").exists()
    for mode, rows, answer in (("paper", 3, "One."), ("paper+facts", 1, "Two.")):
        out = tmp_path / mode
        assert main(build_args(coco_root, path, out, "--context", mode)) == 0
        built = _rows(out)
        assert len(built) == rows and {r["messages"][1]["content"][0]["text"] for r in built} == {answer}
        card = (out / "README.md").read_text()
        assert f"- Context mode: `{mode}`" in card and f"context_mode: {mode}" in card.split("\n---", 1)[0]
    code = main(build_args(coco_root, path, tmp_path / "none", "--context", "paper", "--prompt-version", facts))
    one_line_error(capsys, code, "no train2017 answers in context mode paper", "paper+facts: 1")


def test_answers_of_an_unrecorded_prompt_version_join_the_one_known_mode(coco_root, tmp_path, caplog):
    """An answer of an earlier keypoint-instruct (a version neither the cache nor the installed prompts describe)
    has no known mode: it is built with the known mode's answers, with a warning; --context leaves it out."""
    from keypoint_instruct.teacher.templates import load_prompt

    paper = load_prompt("complex_reasoning", "paper").version
    path = two_runs(
        coco_root,
        tmp_path / "r.sqlite",
        (3, "Old.", {"prompt_version": "0ld"}),
        (1, "New.", {"prompt_version": paper}),
    )
    with caplog.at_level("WARNING"):
        assert main(build_args(coco_root, path, tmp_path / "all")) == 0
    assert any("context mode is unknown" in r.getMessage() for r in caplog.records)
    assert len(_rows(tmp_path / "all")) == 3  # image 1 answered twice: the newest is used
    assert "answers of an unrecorded prompt version read too" in (tmp_path / "all" / "README.md").read_text()
    assert main(build_args(coco_root, path, tmp_path / "paper", "--context", "paper")) == 0
    assert len(_rows(tmp_path / "paper")) == 1


def test_a_shard_cache_built_alone_warns_that_selected_images_have_no_response(coco_root, tmp_path, caplog):
    """`generate --shard 0/2` then `build` held half the images, quietly; after `cache merge` the warning goes."""
    from keypoint_instruct.coco.context import select_scenes

    selected = len(select_scenes(load_scenes(coco_root, DATASET_SPLIT)))
    shards = []
    for index in (0, 1):
        cache = tmp_path / f"shard{index}.sqlite"
        generate = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(coco_root)]
        assert main([*generate, "--split", DATASET_SPLIT, "--cache", str(cache), "--shard", f"{index}/2"]) == 0
        shards.append(cache)

    def warnings_of(cache, out):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(build_args(coco_root, cache, tmp_path / out)) == 0
        return [r.getMessage() for r in caplog.records if "have no response" in r.getMessage()]

    (warning,) = warnings_of(shards[0], "half")
    missing = selected // 2  # shard 0/2 takes the selected images 0, 2, 4, ...: the others lack responses
    tasks = "conversation, detailed_description, complex_reasoning"
    assert warning == (
        f"{missing} selected images of {DATASET_SPLIT} have no response for task {tasks} "
        "(a shard not merged? run `cache merge`)"
    )
    merged = tmp_path / "merged.sqlite"
    assert main(["cache", "merge", str(merged), *map(str, shards)]) == 0
    assert warnings_of(merged, "whole") == []


def test_build_keeps_the_good_answers_and_reports_why_it_dropped_the_others(coco_root, tmp_path, capsys, monkeypatch):
    """Leaking, contradicting and good answers: exactly the good ones become rows; the report says why for the rest
    (the verifier is stood in for: every sentence saying "lying on the grass" is contradicted)."""
    import json

    from keypoint_instruct.dataset import verify

    def find(text, scene):
        at = text.find("lying on the grass")
        if at < 0:
            return []
        return [verify.Contradiction(text, 0, len(text), "lying", 1, "torso upright, hips far above the knees")]

    monkeypatch.setattr(verify, "find_contradictions", find)
    ids = list(load_scenes(coco_root, DATASET_SPLIT))
    path = tmp_path / "responses.sqlite"
    with ResponseCache(path, create=True) as cache:
        put_response(
            cache,
            "conversation",
            ids[0],
            "Question: What is he doing?\nAnswer: He is a .300 hitter, waiting for the pitch.\n===\n"
            "Question: How is his arm?\nAnswer: The right elbow is bent at about 110 degrees.\n===\n"
            "Question: Who is behind him?\nAnswer: Person 2, the umpire in black.\n===\n"
            "Question: Is he resting?\nAnswer: Yes, he is lying on the grass.",
        )
        put_response(cache, "detailed_description", ids[0], "A man is lying on the grass next to his bat.")
        put_response(
            cache,
            "complex_reasoning",
            ids[0],
            "Question: Will he catch it?\nAnswer: It cannot be determined exactly, but his raised glove suggests so.",
        )
    out, report = tmp_path / "ds", tmp_path / "dropped.jsonl"
    assert main(build_args(coco_root, path, out, "--report", str(report))) == 0
    printed = capsys.readouterr().out
    assert "pose verification: on" in printed and f"4 dropped responses and pairs in {report}" in printed
    rows = {row["id"] for row in _rows(out)}
    assert rows == {f"conversation-{ids[0]}-0", f"complex_reasoning-{ids[0]}-0"}
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["task"], r["pair"], r["reason"]) for r in lines] == [
        ("conversation", 1, "leak_angle"),
        ("conversation", 2, "leak_person_label"),
        ("conversation", 3, "pose_contradiction"),
        ("detailed_description", None, "pose_contradiction"),
    ]
    contradiction = lines[2]
    assert contradiction["claim"] == "lying" and contradiction["person"] == 1 and contradiction["image_id"] == ids[0]
    assert contradiction["fact"].startswith("torso upright") and contradiction["span"].startswith("Yes, he is lying")
    card = (out / "README.md").read_text()
    assert "Pose verification: on" in card and "| `pose_contradiction` | 2 |" in card
    assert "| `leak_angle` | 1 |" in card and "| `leak_person_label` | 1 |" in card

    off = tmp_path / "off"
    assert main(build_args(coco_root, path, off, "--no-verify-poses")) == 0
    assert "pose verification: off" in capsys.readouterr().out
    assert "Pose verification: off" in (off / "README.md").read_text()
    assert len(_rows(off)) == 4  # the two answers the verifier dropped are rows now


def test_a_report_path_that_cannot_be_written_is_one_line(coco_root, filter_cache, tmp_path, capsys):
    out = tmp_path / "ds"
    one_line_error(capsys, main(build_args(coco_root, filter_cache, out, "--report", str(tmp_path))), "is a folder")
    code = main(build_args(coco_root, filter_cache, out, "--report", str(tmp_path / "no" / "r.jsonl")))
    one_line_error(capsys, code, "does not exist")
    code = main(build_args(coco_root, filter_cache, out, "--report", str(out / "r.jsonl")))
    one_line_error(capsys, code, "inside --out")
    assert not out.exists()
