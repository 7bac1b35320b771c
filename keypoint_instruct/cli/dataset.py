"""Subcommands of the dataset stage: ``build``, ``push`` and ``export-llava``."""

from __future__ import annotations

import argparse
import logging

from keypoint_instruct.cli.exits import DONE
from keypoint_instruct.vocab import ALL, CONTEXT_MODES, TASKS

logger = logging.getLogger(__name__)


def _build(args: argparse.Namespace) -> int:
    from keypoint_instruct.dataset.folder import build_folder
    from keypoint_instruct.dataset.quality import REASONS

    summaries, stats = build_folder(
        coco_root=args.coco_root,
        coco_split=args.split,
        cache_path=args.cache,
        out=args.out,
        version=args.version,
        overwrite=args.overwrite,
        conversation_turns=args.conversation_turns,
        embed_images=args.embed_images,
        teacher_models=args.teacher_model,
        prompt_versions=args.prompt_version,
        context_mode=args.context,
        exclude_benches=args.exclude_bench or (),
        verify_poses=args.verify_poses,
        report=args.report,
    )
    print(f"wrote {args.out} (version {args.version}, split {args.split})")
    for summary in summaries:
        print(f"  {summary.name:<22} {summary.num_examples:>9,} samples  {summary.download_size:>12,} bytes")
    dropped = stats.dropped_by_reason()
    print(f"responses read: {sum(stats.responses.values()):,}; dropped by reason:")
    for reason in REASONS:
        print(f"  {reason:<22} {dropped[reason]:>9,}")
    teachers = ", ".join(f"{model} ({n:,} samples)" for model, n in sorted(stats.sample_models.items()))
    print(f"teacher: {teachers or 'none'}; spend ${stats.cost_usd:,.2f}")
    if args.exclude_bench:
        print(f"benchmark images left out ({', '.join(args.exclude_bench)}): {dropped['benchmark_image']:,} responses")
    print("pose verification: " + ("on" if stats.verify_poses else "off (--no-verify-poses)"))
    if args.report:
        print(f"report: {len(stats.report):,} dropped responses and pairs in {args.report}")
    return DONE


def _push(args: argparse.Namespace) -> int:
    from keypoint_instruct.dataset.hub import push

    result = push(args.folder, args.repo_id, args.version, private=args.private, dry_run=args.dry_run)
    if args.dry_run:
        visibility = "a private" if args.private else "a public"
        print(f"dry run: would create datasets/{result['repo_id']} as {visibility} repo if it does not exist")
        print(
            f"upload these {len(result['files'])} files in one commit (the card's examples name the repo; other "
            "Parquet files in the repo are removed in that commit):"
        )
        for path in result["files"]:
            print(f"  {path}")
        print(f"then tag {result['tag']} (configs: {', '.join(result['configs'])})")
    else:
        print(f"pushed {args.folder} to datasets/{result['repo_id']} and tagged {result['tag']} ({result['commit']})")
    return DONE


def _export_llava(args: argparse.Namespace) -> int:
    from keypoint_instruct.dataset.hub import export_llava

    count = export_llava(args.folder, args.config, args.out)
    print(f"wrote {count:,} samples of {args.config} to {args.out}")
    return DONE


def register(subparsers) -> None:
    _register_build(subparsers)
    _register_push(subparsers)
    _register_export(subparsers)


def _register_build(subparsers) -> None:
    build = subparsers.add_parser(
        "build",
        help="turn cached teacher responses into a versioned dataset folder (Parquet per config + card)",
        description="Parse and filter the cached teacher responses of one COCO split and write a folder in the "
        f"Hugging Face Hub layout (configs {', '.join(TASKS)} and {ALL}, the default) that "
        "`datasets.load_dataset(FOLDER, CONFIG)` reads. The responses and pairs dropped per filter reason are "
        "printed and written into the card. Each answer's pose claims are checked against the keypoints "
        "(pose_contradiction) unless --no-verify-poses is given.",
    )
    build.add_argument("--coco-root", required=True, help="COCO folder holding annotations/ and the image folders")
    build.add_argument("--split", required=True, help="COCO split the responses were generated from, e.g. train2017")
    build.add_argument("--cache", required=True, help="response cache (SQLite) written by `generate`")
    build.add_argument("--out", required=True, help="dataset folder to write (must be empty unless --overwrite)")
    build.add_argument("--version", required=True, help="dataset version X.Y.Z; shown in the card, tagged on push")
    build.add_argument(
        "--overwrite", action="store_true", help="replace a dataset folder already at --out (other files: refused)"
    )
    build.add_argument(
        "--conversation-turns",
        choices=("single", "multi"),
        default="single",
        help="single: one sample per conversation question (the paper's count); multi: all questions about one "
        "image as one multi-turn sample (default: %(default)s)",
    )
    build.add_argument(
        "--embed-images",
        action="store_true",
        help="store the image bytes in the Parquet files (default: paths relative to the COCO root only)",
    )
    build.add_argument(
        "--teacher-model",
        action="append",
        metavar="MODEL",
        help="build from this teacher model's responses only; repeat it to mix several (the newest answer per "
        "image and task wins). Required when the cache holds responses of more than one model for --split",
    )
    build.add_argument(
        "--prompt-version",
        action="append",
        metavar="VERSION",
        help="build from responses of this prompt version only (the rows' `prompt_version`: one per task, context "
        "mode and prompt edit); repeat it for several, e.g. one per task",
    )
    build.add_argument(
        "--context",
        choices=CONTEXT_MODES,
        default=None,
        help="build from the answers of this context mode only. Required when the cache holds answers of both "
        "modes for --split (a dataset mixes no modes); the card names the mode",
    )
    build.add_argument(
        "--exclude-bench",
        action="append",
        metavar="BENCH_DIR",
        help="leave out every image of this benchmark folder (written by `bench build`), counted as "
        "benchmark_image and named in the card, so that train_sft.py --exclude_bench accepts the dataset; repeat "
        "it for several",
    )
    build.add_argument(
        "--no-verify-poses",
        dest="verify_poses",
        action="store_false",
        help="do not check the answers' pose claims against the keypoints (checked by default)",
    )
    build.add_argument(
        "--report",
        metavar="FILE",
        help="write one JSON line per dropped response or pair to FILE: response key, image id, task, reason, the "
        "offending text, and for pose_contradiction the claim, the person and the fact",
    )
    build.set_defaults(func=_build)


def _register_push(subparsers) -> None:
    push = subparsers.add_parser(
        "push",
        help="upload a dataset folder to the Hugging Face Hub in one commit and tag it vX.Y.Z",
        description="Upload a folder written by `build` to a Hub dataset repo (created if missing) in one commit, "
        "then tag it vX.Y.Z; a version whose tag exists is refused. The token comes from HF_TOKEN or "
        "`hf auth login` and is never printed.",
    )
    push.add_argument("folder", help="dataset folder written by `build`")
    push.add_argument("--repo-id", required=True, help="Hub dataset repo, ORG/NAME")
    push.add_argument(
        "--version", required=True, help="version X.Y.Z to tag (v prefix added); must be the version built"
    )
    push.add_argument(
        "--private",
        action="store_true",
        help="create the repo as private if it does not exist; refused if it exists and is public",
    )
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded and tagged; no network")
    push.set_defaults(func=_push)


def _register_export(subparsers) -> None:
    export = subparsers.add_parser(
        "export-llava",
        help="write one config of a dataset folder as LLaVA-Instruct-150K JSON",
        description="Write the samples of one config in LLaVA-Instruct-150K's layout (id, image, conversations "
        "with from human|gpt, '<image>\\n' leading the first human turn) for LLaVA's own training code.",
    )
    export.add_argument("folder", help="dataset folder written by `build`")
    export.add_argument("--config", default=ALL, help="config to export (default: %(default)s)")
    export.add_argument("--out", required=True, help="JSON file to write")
    export.set_defaults(func=_export_llava)
