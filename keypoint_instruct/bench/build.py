"""Build HPAUB: pick images with people, ask the teacher the three tasks, keep one question per task and image.

The questions come from the same teacher, prompts and settings as the training data (so the teacher calls share the
response cache): conversation -> its first question/answer pair; detailed description -> an instruction from the
list (``prompts.pick_instruction``) with the description as the answer; complex reasoning -> its question and
answer. The teacher's answer is the reference the judge compares against; the judge's view of the image is the
symbolic context (captions, boxes, keypoints). Image choice is a seeded shuffle of the eligible images that are not
training images (:mod:`keypoint_instruct.bench.decontam`); an image whose teacher answer cannot be parsed or failed
is replaced by the next one in that order. ``meta.json`` records the draw, the teacher and its sampling settings,
the exclusion rule with its counts, and the benchmark's content id (a hash of its image ids, by which
``build --exclude-bench`` and ``train_sft.py --exclude_bench`` know it). Refusals found before
any teacher call are :class:`BenchmarkError` (exit 2); too few usable answers after asking is
:class:`BenchmarkShortError` (exit 1: the command ran and may have paid).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

from keypoint_instruct.bench.layout import ImageContext, Question, Reference, question_id, write_jsonl
from keypoint_instruct.errors import BenchmarkError, BenchmarkShortError
from keypoint_instruct.vocab import TASKS

log = logging.getLogger(__name__)

HUB_CONFIG = "hpaub"


def eligible_scenes(scenes, *, min_keypoints: int) -> list:
    """Images with at least one person with ``min_keypoints`` labelled keypoints, in image-id order."""
    from keypoint_instruct.coco.context import select_scenes

    chosen = select_scenes(list(scenes), min_persons=1, min_keypoints=min_keypoints)
    return sorted(chosen, key=lambda s: s.image_id)


def draw_order(scenes: list, seed: int) -> list:
    """The seeded order in which images are tried: the same scenes and seed always give the same order."""
    order = sorted(scenes, key=lambda s: s.image_id)
    random.Random(seed).shuffle(order)
    return order


def _extract(scene, texts: dict[str, str]) -> dict[str, tuple[str, str]] | None:
    """(question, reference) per category from the three teacher responses, or None if one does not parse."""
    from keypoint_instruct.dataset.parse import ParseError, parse_description, parse_pairs
    from keypoint_instruct.teacher.templates import pick_instruction

    try:
        conversation = parse_pairs(texts["conversation"])[0]
        reasoning = parse_pairs(texts["complex_reasoning"])[0]
        description = parse_description(texts["detailed_description"])
    except (KeyError, ParseError) as err:
        log.info("image %d left out: %s", scene.image_id, err)
        return None
    return {
        "conversation": (conversation.question, conversation.answer),
        "detailed_description": (pick_instruction(scene.image_id), description),
        "complex_reasoning": (reasoning.question, reasoning.answer),
    }


# What a benchmark folder holds; anything else in --out is someone else's and is never overwritten.
_BENCH_ENTRIES = {"questions.jsonl", "references.jsonl", "contexts.jsonl", "images", "meta.json", "hub"}
_DRAW_KEYS = ("coco_split", "images", "seed", "min_keypoints", "teacher_model", "context_mode", "sampling")
# What a benchmark folder built before a key was kept was built with (the sampling settings were fixed then).
_EARLIER = {"sampling": {"max_tokens": 1024, "seed": 42, "temperature": 0.2}}


def check_out(out: Path, meta: dict, *, overwrite: bool, image_ids=None) -> None:
    """Refuse an ``out`` that holds something other than this very benchmark, unless ``overwrite`` allows it.

    Rebuilding the same benchmark (same draw, teacher, sampling settings and prompt versions, so the same question
    ids) into its folder is allowed: it writes the same files. A different benchmark there would leave answers and
    results pointing at questions that changed under them; so would other images (``image_ids``, when given: a
    draw that now leaves out training images).
    """
    if out.exists() and not out.is_dir():
        raise BenchmarkError(f"--out {out} is a file, not a benchmark folder")
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if not entries:
        return
    foreign = sorted(entries - _BENCH_ENTRIES)
    if foreign or "meta.json" not in entries:
        what = ", ".join(foreign[:3]) if foreign else "no meta.json"
        raise BenchmarkError(f"--out {out} is not a benchmark folder ({what}); choose an empty or new folder")
    try:
        old = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    changed = [k for k in meta if old.get(k, _EARLIER.get(k)) != meta[k]]
    if image_ids is not None and _drawn_before(out) not in (None, set(image_ids)):
        changed.append("images drawn")
        meta = {**meta, "images drawn": "others (training images left out?)"}
    if changed and not overwrite:
        diff = "; ".join(f"{k} {old.get(k, _EARLIER.get(k))!r} -> {meta[k]!r}" for k in changed[:3])
        raise BenchmarkError(
            f"--out {out} holds a different benchmark ({diff}); pass --overwrite to replace it, "
            "or write to another folder"
        )


def _too_few(picked: int, images: int, eligible: int, split: str, unanswered: int) -> BenchmarkShortError:
    """The error of a build that asked the teacher and got too few usable answers (exit 1: it ran, and paid)."""
    retry = f"; {unanswered} requests got no answer (run the same command again to retry them)" if unanswered else ""
    return BenchmarkShortError(
        f"only {picked} of {images} images got three usable teacher answers, with all {eligible} eligible images "
        f"of {split} tried{retry}; or lower --images"
    )


def _drawn_before(out: Path) -> set[int] | None:
    """The image ids of the benchmark in ``out``, or None when it has no readable questions."""
    try:
        from keypoint_instruct.dataset.exclusion import read_bench_images

        return set(read_bench_images(out).image_ids)
    except (OSError, ValueError):
        return None


def build_bench(
    coco_root: str | Path,
    split: str,
    out: str | Path,
    *,
    make_teacher,
    cache,
    settings,
    images: int = 30,
    seed: int = 0,
    min_keypoints: int = 8,
    context_mode: str = "paper",
    concurrency: int = 16,
    overwrite: bool = False,
    exclude_training=(),
    allow_training_overlap: bool = False,
) -> Path:
    """Write the benchmark folder ``out``; return it. See :func:`check_out` for when ``out`` may hold one already.

    Candidates in a training split under ``coco_root`` or in an ``exclude_training`` source are never drawn unless
    ``allow_training_overlap`` (:mod:`keypoint_instruct.bench.decontam`); the line saying what was left out is
    logged and the rule recorded in ``meta.json``.
    """
    from keypoint_instruct.bench.decontam import decontamination
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.dataset.exclusion import content_id
    from keypoint_instruct.teacher.catalogue import record_prompts

    if images < 1:
        raise BenchmarkError(f"--images must be at least 1, got {images}")
    out = Path(out)
    what = (split, images, seed, min_keypoints, settings.model, context_mode, settings.sampling())
    draw = dict(zip(_DRAW_KEYS, what, strict=True))
    check_out(out, draw, overwrite=overwrite)  # before any teacher call
    clean = decontamination(coco_root, split, exclude_training, allow_overlap=allow_training_overlap)
    scenes = load_scenes(coco_root, split)
    order = draw_order(clean.filter(eligible_scenes(scenes.values(), min_keypoints=min_keypoints)), seed)
    if len(order) < images:
        left = f" after leaving out {clean.in_training} training images" if clean.in_training else ""
        raise BenchmarkError(
            f"{split} has {len(order)} image(s) with a person with >= {min_keypoints} labelled keypoints{left}; "
            f"{images} asked (lower --images or --min-keypoints)"
        )
    record_prompts(cache, TASKS, context_mode)
    picked, keys, versions = _ask(order, images, make_teacher, cache, settings, context_mode, concurrency)
    clean.note_drawn(scene.image_id for scene, _ in picked)
    (log.warning if clean.allow_overlap else log.debug)("%s", clean.summary())  # `bench build` prints the record
    meta = {
        "name": "HPAUB",
        **draw,
        "prompt_versions": versions,
        "content_id": content_id(scene.image_id for scene, _ in picked),
        "decontamination": clean.record(),
    }
    compared = {k: v for k, v in meta.items() if k not in ("content_id", "decontamination")}
    check_out(out, compared, overwrite=overwrite, image_ids=[s.image_id for s, _ in picked])  # prompts may change
    _write(out, coco_root, picked, keys, meta, settings.model)
    log.info("wrote %d questions about %d images to %s", len(picked) * len(TASKS), len(picked), out)
    return out


def _ask(order: list, images: int, make_teacher, cache, settings, context_mode: str, concurrency: int):
    """Ask the teacher about images in ``order`` until ``images`` of them have three usable answers.

    Returns (picked: [(scene, {category: (question, reference)})] by image id, keys by image and task, versions).
    """
    from keypoint_instruct.bench.calls import complete_all
    from keypoint_instruct.teacher.requests import build_requests

    picked: list[tuple[object, dict]] = []
    keys: dict[int, dict[str, str]] = {}
    versions: dict[str, str] = {}
    cursor = unanswered = 0
    while len(picked) < images and cursor < len(order):
        batch = order[cursor : cursor + images - len(picked)]
        cursor += len(batch)
        by_task = {task: build_requests(batch, task, settings, context_mode) for task in TASKS}
        asked = [r for reqs in by_task.values() for r in reqs]
        texts = complete_all(make_teacher, cache, asked, concurrency=concurrency)
        unanswered += len({r.key for r in asked} - cache.answered(r.key for r in asked))
        for i, scene in enumerate(batch):
            reqs = {task: by_task[task][i] for task in TASKS}
            versions.update({task: r.prompt_version for task, r in reqs.items()})
            got = {task: texts[r.key] for task, r in reqs.items() if r.key in texts}
            qa = _extract(scene, got)
            if qa is not None:
                picked.append((scene, qa))
                keys[scene.image_id] = {task: r.key for task, r in reqs.items()}
    if len(picked) < images:
        split = order[0].coco_split if order else "the split"
        raise _too_few(len(picked), images, len(order), split, unanswered)
    picked.sort(key=lambda item: item[0].image_id)
    return picked, keys, versions


def _write(out: Path, coco_root, picked: list, keys: dict, meta: dict, teacher_model: str) -> None:
    """The benchmark folder's files: images, questions, references, contexts, meta.json and the Hub copy."""
    from keypoint_instruct.coco.annotations import image_path
    from keypoint_instruct.coco.context import format_context

    shutil.rmtree(out / "images", ignore_errors=True)  # no image of an earlier draw stays behind
    (out / "images").mkdir(parents=True, exist_ok=True)
    questions, references, contexts = [], [], []
    for scene, qa in picked:
        source = image_path(coco_root, scene)
        if not Path(source).is_file():
            raise BenchmarkError(f"image {source} of image id {scene.image_id} is missing from the COCO tree")
        shutil.copyfile(source, out / "images" / scene.file_name)
        contexts.append(ImageContext(scene.image_id, scene.file_name, scene.coco_split, format_context(scene)))
        for category in TASKS:
            qid = question_id(category, scene.image_id)
            question, reference = qa[category]
            questions.append(Question(qid, scene.file_name, scene.image_id, category, question))
            references.append(Reference(qid, category, reference, teacher_model, keys[scene.image_id][category]))
    write_jsonl(out / "questions.jsonl", questions)
    write_jsonl(out / "references.jsonl", references)
    write_jsonl(out / "contexts.jsonl", contexts)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    write_hub_folder(out, questions, references, contexts, meta)


def write_hub_folder(out: Path, questions, references, contexts, meta: dict) -> Path:
    """The ``hpaub`` config as a Hub dataset folder: ``hub/hpaub/test-*.parquet`` and a README with ``configs:``."""
    from datasets import Dataset, Features, Image, Value

    refs = {r.question_id: r for r in references}
    ctx = {c.image_id: c for c in contexts}
    rows = []
    for q in questions:
        rows.append(
            {
                "question_id": q.question_id,
                "image_id": q.image_id,
                "coco_split": ctx[q.image_id].coco_split,
                "category": q.category,
                "question": q.text,
                "reference": refs[q.question_id].text,
                "context": ctx[q.image_id].context,
                "image": {"bytes": (out / "images" / q.image).read_bytes(), "path": q.image},
                "teacher_model": refs[q.question_id].teacher_model,
                "response_key": refs[q.question_id].response_key,
            }
        )
    features = Features(
        {
            "question_id": Value("string"),
            "image_id": Value("int64"),
            "coco_split": Value("string"),
            "category": Value("string"),
            "question": Value("string"),
            "reference": Value("string"),
            "context": Value("string"),
            "image": Image(),
            "teacher_model": Value("string"),
            "response_key": Value("string"),
        }
    )
    hub = out / "hub"
    (hub / HUB_CONFIG).mkdir(parents=True, exist_ok=True)
    for old in (hub / HUB_CONFIG).glob("*.parquet"):
        old.unlink()
    dataset = Dataset.from_list(rows, features=features)
    parquet = hub / HUB_CONFIG / "test-00000-of-00001.parquet"
    dataset.to_parquet(str(parquet))
    # dataset_info is not decoration: `datasets` keys its cache of a local folder on the card's YAML, so without the
    # sizes a rebuilt benchmark in a folder of the same name would load the previous build's rows.
    info = {
        "config_name": HUB_CONFIG,
        "features": features._to_yaml_list(),
        "splits": [{"name": "test", "num_bytes": dataset.data.nbytes, "num_examples": len(rows)}],
        "download_size": parquet.stat().st_size,
        "dataset_size": dataset.data.nbytes,
    }
    (hub / "README.md").write_text(_hub_readme(len(rows), meta, str(hub), info), encoding="utf-8")
    return hub


def _hub_readme(n: int, meta: dict, ref: str, info: dict) -> str:
    """The benchmark's card: what it is, how it was drawn, how to load it and how to score a model on it.

    ``ref`` is the folder the card's example loads; ``keypoint-instruct push`` turns it into the repo id.
    """
    import yaml

    from keypoint_instruct.teacher.offline import OfflineTeacher

    versions = ", ".join(f"{task} `{v}`" for task, v in sorted(meta["prompt_versions"].items()))
    synthetic = meta["teacher_model"] == OfflineTeacher.model
    notice = (
        f"> **Synthetic offline references.** The teacher of this build is `{OfflineTeacher.model}`, a "
        "deterministic program, not a language model; the build only shows that the pipeline runs.\n\n"
        if synthetic
        else ""
    )
    front = {
        "pretty_name": "HPAUB",
        "license": "cc-by-4.0",
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["human-pose", "human-action", "coco", "benchmark", *(["synthetic"] if synthetic else [])],
        "size_categories": ["n<1K"],
        "configs": [{"config_name": HUB_CONFIG, "data_files": [{"split": "test", "path": f"{HUB_CONFIG}/test-*"}]}],
        "dataset_info": [info],
    }
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False, width=1000)}---\n\n"
        "# HPAUB (Human Pose and Action Understanding Benchmark)\n\n"
        f"{notice}"
        f"{n} questions about {meta['images']} COCO `{meta['coco_split']}` images with people: one per task type "
        "(conversation, detailed description, complex reasoning) per image, as in the HPAUB of *Keypoint-Integrated "
        "Instruction-Following Data Generation for Enhanced Human Pose and Action Understanding in Multimodal "
        "Models* (Zhang, An and Shouno). Each row holds the image, the question, the teacher's reference answer and "
        "the symbolic context (captions, boxes, keypoints) that a text-only judge grades against.\n\n"
        "## How it was made\n\n"
        f"- Images: a seeded draw (seed {meta['seed']}) among the `{meta['coco_split']}` images with a person with "
        f"at least {meta['min_keypoints']} labelled keypoints.\n"
        f"- Teacher (questions and reference answers): `{meta['teacher_model']}`, context mode "
        f"`{meta['context_mode']}`; prompt versions: {versions}.\n"
        f"- Teacher sampling: {_sampling(meta)}.\n"
        f"- Training images: {_decontam(meta)}.\n"
        "- Conversation: the teacher's first question and answer; detailed description: an instruction from a fixed "
        "list (the teacher was asked it) and the teacher's description; complex reasoning: the teacher's question "
        "and answer.\n\n"
        "## Use it\n\n"
        "```python\nfrom datasets import load_dataset\n\n"
        f'bench = load_dataset("{ref}", "{HUB_CONFIG}", split="test")\n```\n\n'
        "Score a model with keypoint-instruct on the benchmark folder this was written from: `bench answer`, then "
        "`bench judge` (GPT-4o grades the reference and the model's answer 1-10), then `bench report` (the paper's "
        "Tables 4 and 5 with bootstrap intervals).\n\n"
        "## License\n\n"
        "The questions, answers and contexts are released under CC BY 4.0, like the COCO annotations they come "
        "from. The embedded images belong to their Flickr owners and are covered by the "
        "[COCO terms of use](https://cocodataset.org/#termsofuse).\n"
    )


def _sampling(meta: dict) -> str:
    from keypoint_instruct.llm.request import describe_sampling

    return describe_sampling(meta.get("sampling"))


def _decontam(meta: dict) -> str:
    from keypoint_instruct.bench.decontam import describe_record

    return describe_record(meta.get("decontamination"))
