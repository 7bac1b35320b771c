"""The HTML pages as the fixture pipeline makes them, for the review, report and real-browser tests.

``mixed_cache``: the offline teacher's answers for the fixture COCO plus scripted answers that the build drops for
each kind of reason (a leaked coordinate, a named source, a refusal, a repeated question, an extra pair, a cut-short
answer, an unparseable one, a superseded one). ``hpaub_report``: ``bench build`` with the offline teacher, two
models' answers written here, the offline judge, ``bench report``: the demo's path without the training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keypoint_instruct.cli import main
from tests.fixtures_dataset import DATASET_SPLIT, put_response

TEACHER = "gpt-4o-2024-08-06"
LEAKY_CONVERSATION = (
    "Question: What is the person doing?\nAnswer: The person at [0.42, 0.31] is running.\n===\n"
    "Question: Where are the arms?\nAnswer: According to the keypoints, the arms swing at the sides.\n===\n"
    "Question: Is the person on skis?\nAnswer: Yes, the person glides on skis.\n===\n"
    "Question: Is the person on skis?\nAnswer: Yes.\n===\n"
    "Question: Is the person sitting?\nAnswer: I'm sorry, I cannot see the image, <b>not</b> even a little."
)
# markup that must stay text, and a 150-letter "word" that must wrap rather than widen the page
VAGUE_ANSWER = "A person is in the picture <doing> things: " + "z" * 150
TWO_QUESTIONS = (
    "Question: Why is the person leaning forward?\nAnswer: To keep balance while gliding downhill.\n===\n"
    "Question: What happens next?\nAnswer: They turn."
)


def mixed_cache(offline_cache: Path, path: Path) -> tuple[Path, dict[str, int]]:
    """A copy of the offline cache with scripted answers added; returns it and the image id of each scripted case."""
    from keypoint_instruct.llm.store.cache import ResponseCache

    shutil.copyfile(offline_cache, path)
    with ResponseCache(path) as cache:
        ids = sorted({r.image_id for r in cache.iter_responses(coco_split=DATASET_SPLIT)})
        cases = {
            "leaky": ids[0],
            "truncated": ids[1],
            "unparseable": ids[2],
            "extra_pair": ids[3],
            "description_leak": ids[4],
        }
        put = dict(model=TEACHER, prompt_version="scripted-v1")
        put_response(cache, "conversation", cases["leaky"], LEAKY_CONVERSATION, **put)
        cut = "The person stands with"
        put_response(cache, "detailed_description", cases["truncated"], cut, finish_reason="length", **put)
        put_response(cache, "complex_reasoning", cases["unparseable"], "No labels at all in this answer.", **put)
        put_response(cache, "complex_reasoning", cases["extra_pair"], TWO_QUESTIONS, **put)
        put_response(
            cache, "detailed_description", cases["description_leak"], "The bounding box shows a skier.", **put
        )
    return path, cases


def review_folder(coco_root: Path, cache: Path, out: Path, *extra: str) -> Path:
    argv = ["review", "--coco-root", str(coco_root), "--split", DATASET_SPLIT, "--cache", str(cache)]
    assert main([*argv, "--out", str(out), *extra]) == 0
    return out


def _answers(bench: Path, folder: Path) -> dict[str, Path]:
    """Two models' answers: one repeats the reference's first sentence, one says the same vague thing every time."""
    from keypoint_instruct.bench.layout import load_bench

    loaded = load_bench(bench)
    files = {}
    for name in ("echo", "vague"):
        path = folder / f"answers_{name}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for q in loaded.questions:
                reference = loaded.references[q.question_id].text
                text = reference.split(". ")[0] + "." if name == "echo" else VAGUE_ANSWER
                row = {"question_id": q.question_id, "model": name, "text": text, "backend": "test",
                       "model_path": name, "question": q.text}  # fmt: skip
                fh.write(json.dumps(row) + "\n")
        files[name] = path
    return files


def hpaub_report(coco_root: Path, folder: Path) -> Path:
    """``folder/report`` written by ``bench report`` over the offline teacher's benchmark and the offline judge."""
    bench = folder / "hpaub"
    cache = folder / "teacher.sqlite"
    argv = ["bench", "build", "--coco-root", str(coco_root), "--split", "val2014", "--cache", str(cache)]
    assert main([*argv, "--out", str(bench), "--images", "6", "--seed", "0", "--teacher", "offline"]) == 0
    results = []
    for name, answers in _answers(bench, folder).items():
        result = folder / f"result_{name}.json"
        argv = [
            "bench",
            "judge",
            "--bench",
            str(bench),
            "--answers",
            str(answers),
            "--cache",
            str(folder / "j.sqlite"),
        ]
        assert main([*argv, "--judge-model", "offline-overlap", "--out", str(result), "--no-progress"]) == 0
        results.append(str(result))
    out = folder / "report"
    assert main(["bench", "report", *results, "--baseline", "vague", "--out", str(out), "--resamples", "200"]) == 0
    return out
