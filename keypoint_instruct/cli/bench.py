"""``keypoint-instruct bench build|answer|judge|report``: the HPAUB benchmark.

Each step parses its options, checks what it can before any work (a key, a writable --out) and calls
:mod:`keypoint_instruct.bench`; the exit statuses are :mod:`keypoint_instruct.cli.exits`.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from keypoint_instruct.cli.argtypes import count
from keypoint_instruct.cli.endpoint import add_base_url_option, quiet_http_logs
from keypoint_instruct.cli.exits import DONE, exit_status
from keypoint_instruct.cli.preflight import require_key, writable
from keypoint_instruct.cli.sampling import add_sampling_options
from keypoint_instruct.cli.selection import teacher_model_of
from keypoint_instruct.errors import BenchmarkError, InputNotFoundError
from keypoint_instruct.vocab import (
    CONTEXT_MODES,
    DEFAULT_CONTEXT_MODE,
    JUDGE_MODEL,
    OFFLINE_JUDGE_MODEL,
    OFFLINE_TEACHER_MODEL,
    TEACHER_MODEL,
)

log = logging.getLogger(__name__)

_REASONS = {"unparseable": "replies without two readable scores", "no judge reply": "requests without a reply"}


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="HPAUB: build the benchmark, answer it with a model, judge the answers, report the scores",
        description="The Human Pose and Action Understanding Benchmark: build -> answer -> judge -> report.",
    )
    steps = bench.add_subparsers(dest="bench_command", metavar="STEP", required=True)
    _register_build(steps)
    _register_answer(steps)
    _register_judge(steps)
    _register_report(steps)


def _register_build(steps) -> None:
    p = steps.add_parser(
        "build",
        help="pick images, ask the teacher, write a self-contained benchmark folder",
        description="Draw --images images with a well-labelled person from --split (seeded: same seed and split, "
        "same images), never one of a COCO training split under --coco-root (image ids are shared across years: "
        "train2017 holds most of val2014) or of an --exclude-training source; ask the teacher the three tasks with "
        "the training prompts and keep one question per task and image, the teacher's answer as the reference. "
        "Writes questions, references, contexts, the images, meta.json (the draw, the teacher's settings, the "
        "exclusion rule and its counts) and a Hub-loadable copy to --out. Exit status 1 when the teacher gave too few "
        "usable answers (the run asked, and kept what it got); 2 for bad input, found before any teacher call.",
    )
    p.add_argument("--coco-root", required=True, type=Path, help="COCO root holding annotations/ and <split>/ images")
    p.add_argument("--split", default="val2014", help="COCO split to draw from (default: %(default)s, as the paper)")
    p.add_argument("--cache", required=True, type=Path, help="the teacher's response cache (created if absent)")
    p.add_argument("--out", required=True, type=Path, help="benchmark folder to write (BENCH_DIR)")
    p.add_argument(
        "--images",
        type=count(1),
        default=30,
        help="number of images; one question per task each (default: %(default)s, as the paper)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the image draw (default: %(default)s)")
    p.add_argument(
        "--min-keypoints",
        type=count(1),
        default=8,
        help="an image needs a person with at least this many labelled keypoints (default: %(default)s)",
    )
    p.add_argument(
        "--teacher",
        choices=("openai", "offline"),
        default="openai",
        help=f"openai: an OpenAI-compatible endpoint (needs OPENAI_API_KEY or --base-url); offline: the "
        f"deterministic {OFFLINE_TEACHER_MODEL} teacher, no key needed (default: %(default)s)",
    )
    p.add_argument("--model", default=None, help=f"teacher model (default: the training data's, {TEACHER_MODEL})")
    add_base_url_option(p, "base URL of an OpenAI-compatible endpoint, http(s)://host[:port]/v1 (default: OpenAI's)")
    p.add_argument(
        "--context",
        default=DEFAULT_CONTEXT_MODE,
        choices=CONTEXT_MODES,
        help="context format of the teacher prompts: the paper's, or with pose facts (default: %(default)s)",
    )
    p.add_argument(
        "--concurrency", type=count(1), default=16, help="teacher requests in flight at once (default: %(default)s)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a different benchmark already in --out (its answers and results no longer match it)",
    )
    p.add_argument(
        "--exclude-training",
        action="append",
        metavar="DATASET_DIR_OR_CACHE",
        help="never draw an image of this training data: a dataset folder written by `build` (its rows' images) or "
        "a response cache (its teacher answers for other splits than --split); repeat it for several. The training "
        "splits under --coco-root (train2014, train2017) are always left out",
    )
    p.add_argument(
        "--allow-training-overlap",
        action="store_true",
        help="draw training images too (meta.json and every report then say so); for those who mean it",
    )
    add_sampling_options(p, seed_flag="--teacher-seed", for_benchmark=True)
    p.set_defaults(func=cmd_build)


def _register_answer(steps) -> None:
    p = steps.add_parser(
        "answer",
        help="answer every question with a model (resumable)",
        description="Answer each question of a benchmark folder with a model: --backend hf runs a transformers "
        "model here (batched greedy decoding), --backend openai asks an OpenAI-compatible endpoint (temperature 0). "
        "Answers are appended to --out as they come; a rerun answers only the questions still missing there. Exit "
        "status 1 when the endpoint gives no usable answer (down or failing after the client's retries: run the same "
        "command again); 2, with one line, on bad input or an endpoint that refuses the key or the model.",
    )
    p.add_argument("--bench", required=True, type=Path, help="benchmark folder written by `bench build`")
    p.add_argument("--model", required=True, help="local model folder or Hub id (hf), or model name (openai)")
    p.add_argument(
        "--backend",
        choices=("hf", "openai"),
        required=True,
        help="hf: a transformers image-text-to-text model run here; openai: an OpenAI-compatible endpoint",
    )
    add_base_url_option(p, "base URL of the OpenAI-compatible endpoint, http(s)://host[:port]/v1 (openai backend)")
    p.add_argument("--out", required=True, type=Path, help="answers file (JSON lines); existing answers are kept")
    p.add_argument("--name", default=None, help="model name in reports (default: the folder name or the model id)")
    p.add_argument(
        "--batch-size",
        type=count(1),
        default=8,
        help="questions per generate() call (hf) or requests in flight (openai) (default: %(default)s)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=count(1),
        default=512,
        help="longest answer in tokens (default: %(default)s); an OpenAI reasoning model gets the teacher's "
        "max_completion_tokens instead",
    )
    p.add_argument(
        "--chat-template",
        type=Path,
        default=None,
        help="hf backend: a .jinja chat template to prompt with instead of the model's own, e.g. "
        "recipes/chat_templates/llava-1.5.jinja for the base llava-hf model (default: the model's own)",
    )
    p.set_defaults(func=cmd_answer)


def _register_judge(steps) -> None:
    p = steps.add_parser(
        "judge",
        help="grade the answers against the references with a judge model",
        description="Ask the judge to score each answer against the benchmark's reference, 1-10 (a reply without "
        "two readable scores is asked again once, then excluded and counted). Judge calls are cached: a rerun sends "
        "only what is missing. Exit status 1 when no answer could be judged at all (the result file is still "
        "written); 2, with one line, on bad input.",
    )
    p.add_argument("--bench", required=True, type=Path, help="benchmark folder written by `bench build`")
    p.add_argument("--answers", required=True, type=Path, help="answers file written by `bench answer`")
    p.add_argument(
        "--cache", required=True, type=Path, help="response cache (SQLite) for judge calls; created if absent"
    )
    p.add_argument(
        "--judge-model",
        default=JUDGE_MODEL,
        help=f"judge model (default: %(default)s, pinned); {OFFLINE_JUDGE_MODEL!r} is a deterministic "
        "lexical-overlap stand-in for runs without a key, NOT GPT-4o",
    )
    add_base_url_option(p, "base URL of an OpenAI-compatible endpoint for the judge, http(s)://host[:port]/v1")
    p.add_argument("--out", required=True, type=Path, help="result file to write (RESULT.json)")
    p.add_argument(
        "--concurrency", type=count(1), default=16, help="judge requests in flight at once (default: %(default)s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_judge)


def _register_report(steps) -> None:
    p = steps.add_parser(
        "report",
        help="tables like the paper's Tables 4 and 5, intervals, and a bar chart",
        description="Score each model per category on its judged questions (x 10, the paper's scale), with the "
        "relative score against the reference, bootstrap 95% intervals and the improvement over --baseline. "
        "Writes report.md (also printed), report.json, report.png and report.html (the tables, the chart and every "
        "question with each model's answer and the judge's scores, sortable; its images/ beside it) to --out.",
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT.json", help="results written by `bench judge`")
    p.add_argument(
        "--baseline", default=None, help="model name to compute the improvement against (default: no improvement)"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="folder for report.md, report.json, report.png and report.html"
    )
    p.add_argument(
        "--resamples",
        type=count(1),
        default=2000,
        help="bootstrap resamples for the 95%% intervals (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: %(default)s)")
    p.set_defaults(func=cmd_report)


def cmd_build(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.bench.build import build_bench
    from keypoint_instruct.bench.decontam import describe_record
    from keypoint_instruct.cli.sampling import generation_settings
    from keypoint_instruct.llm.providers.openai import OpenAIChat
    from keypoint_instruct.llm.store.cache import ResponseCache

    # as generate: the offline teacher answers as itself, with no endpoint (never recorded under another model)
    model = teacher_model_of(args, offline=args.teacher == "offline")
    settings = generation_settings(args, model)
    if not args.coco_root.is_dir():
        raise InputNotFoundError(f"COCO root {args.coco_root} does not exist")
    if args.out.exists() and not args.out.is_dir():
        raise BenchmarkError(f"--out {args.out} is a file, not a benchmark folder")
    writable(args.out, folder=True)
    if args.teacher == "offline":
        from keypoint_instruct.teacher.offline import OfflineTeacher

        def make_teacher():
            return OfflineTeacher()
    else:
        require_key(args.base_url, f"teacher {model}", "or use --teacher offline")

        def make_teacher():
            return OpenAIChat(model, base_url=args.base_url)

    with ResponseCache(args.cache, create=True) as cache:
        out = build_bench(
            args.coco_root,
            args.split,
            args.out,
            make_teacher=make_teacher,
            cache=cache,
            settings=settings,
            images=args.images,
            seed=args.seed,
            min_keypoints=args.min_keypoints,
            context_mode=args.context,
            concurrency=args.concurrency,
            overwrite=args.overwrite,
            exclude_training=args.exclude_training or (),
            allow_training_overlap=args.allow_training_overlap,
        )
    print(f"wrote {out}/questions.jsonl ({args.images * 3} questions about {args.images} images) and {out}/hub")
    print(f"training images: {describe_record(json.loads((out / 'meta.json').read_text()).get('decontamination'))}")
    return DONE


def cmd_answer(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.bench.answer import answer_hf, answer_openai, default_name
    from keypoint_instruct.bench.layout import load_bench

    bench = load_bench(args.bench)
    name = args.name or default_name(args.model)
    writable(args.out, folder=False)
    if args.backend == "hf":
        if args.base_url:
            raise BenchmarkError("--base-url is for --backend openai; the hf backend runs the model here")
        done = answer_hf(
            bench,
            args.out,
            args.model,
            name=name,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            chat_template=args.chat_template,
        )
    else:
        if args.chat_template is not None:
            raise BenchmarkError("--chat-template is for --backend hf; an endpoint applies its own template")
        require_key(args.base_url, f"model {args.model} on the openai backend", "or use --backend hf")
        done = answer_openai(
            bench,
            args.out,
            args.model,
            name=name,
            base_url=args.base_url,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
    print(f"{name}: answered {done} question(s) now, {len(bench.questions) - done} answered before -> {args.out}")
    return DONE


def cmd_judge(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.bench.judge import check_complete, run_judge
    from keypoint_instruct.bench.layout import load_answers, load_bench
    from keypoint_instruct.llm.store.cache import ResponseCache

    bench = load_bench(args.bench)
    answers = load_answers(args.answers, bench)
    writable(args.out, folder=False)
    missing = check_complete(bench, answers)
    if missing:
        log.warning("%d question(s) have no answer and count as unanswered (not scored)", len(missing))
    if args.judge_model == OFFLINE_JUDGE_MODEL:
        from keypoint_instruct.bench.overlap import OVERLAP_LABEL, OverlapJudge

        label = OVERLAP_LABEL

        def make_judge():
            return OverlapJudge()
    else:
        from keypoint_instruct.llm.providers.openai import OpenAIChat

        require_key(
            args.base_url, f"judge {args.judge_model}", f"--judge-model {OFFLINE_JUDGE_MODEL} runs without one"
        )
        label = args.judge_model + (f" at {args.base_url}" if args.base_url else "")

        def make_judge():
            return OpenAIChat(args.judge_model, base_url=args.base_url)

    with ResponseCache(args.cache, create=True) as cache:
        result = run_judge(
            bench,
            answers,
            make_judge,
            cache,
            judge_model=args.judge_model,
            judge_label=label,
            concurrency=args.concurrency,
            progress=not args.no_progress,
        )
    result.write(args.out)
    counts = result.counts()
    judged = sum(c["judged"] for c in counts.values())
    excluded = sum(c["excluded"] for c in counts.values())
    print(f"{result.model}: judged {judged}, excluded {excluded} (judge: {label}) -> {args.out}")
    if judged == 0:
        reasons = Counter(j.reason for j in result.judgements if j.status == "excluded")
        why = ", ".join(f"{n} {_REASONS.get(r, r)}" for r, n in sorted(reasons.items())) or "no answers to judge"
        log.warning(
            "no answer could be judged (%s): %s has nothing for `bench report` to score; check --judge-model "
            "and --base-url (the judge must reply with two scores on its first line)",
            why,
            args.out,
        )
    return exit_status(stopped_short=judged == 0)


def cmd_report(args: argparse.Namespace) -> int:
    from keypoint_instruct.bench.judge import read_result
    from keypoint_instruct.bench.report import write_report

    results = [read_result(path) for path in args.results]
    writable(args.out, folder=True)
    write_report(results, args.out, baseline=args.baseline, resamples=args.resamples, seed=args.seed)
    print((args.out / "report.md").read_text(encoding="utf-8"), end="")
    print(f"\nwrote {args.out}/report.md, report.json, report.png and {args.out / 'report.html'}")
    return DONE
