"""``contexts`` and ``show``: COCO annotations -> the teacher's context text, as JSON lines or as a picture."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import multiprocessing
import os
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import count
from keypoint_instruct.cli.exits import DONE
from keypoint_instruct.errors import KeypointInstructError, UnknownImageError, UsageError
from keypoint_instruct.vocab import CONTEXT_MODES, DEFAULT_CONTEXT_MODE

log = logging.getLogger(__name__)


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--coco-root",
        required=True,
        type=Path,
        metavar="DIR",
        help="COCO folder holding annotations/ and one image folder per split",
    )
    parser.add_argument(
        "--split", required=True, metavar="SPLIT", help="COCO split to read, e.g. train2017 or val2014"
    )
    paper, facts = CONTEXT_MODES
    parser.add_argument(
        "--context",
        default=DEFAULT_CONTEXT_MODE,
        choices=CONTEXT_MODES,
        help=f"context format: {paper!r} (captions, boxes, keypoints as in the paper's Fig. 1) or {facts!r} "
        "(the same plus a block of per-person pose facts)",
    )


def register(subparsers) -> None:
    ctx = subparsers.add_parser(
        "contexts",
        help="write the context text of every selected image as JSON lines",
        description="Load a COCO split and write one JSON line per selected image with image_id, file_name, "
        "coco_split, width, height, num_people (non-crowd people) and context (the teacher's view of the image). "
        "By default an image is selected when it has at least one person with a labelled keypoint.",
    )
    _add_source(ctx)
    ctx.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="JSONL file to write (default: standard output)"
    )
    ctx.add_argument(
        "--limit", type=count(1), default=None, metavar="N", help="stop after the first N selected images"
    )
    ctx.add_argument(
        "--min-persons",
        type=count(0),
        metavar="N",
        default=1,
        help="keep images with at least this many people having --min-keypoints labelled keypoints (default 1; "
        "0 keeps every image)",
    )
    ctx.add_argument(
        "--min-keypoints",
        type=count(0),
        metavar="N",
        default=1,
        help="labelled keypoints (0-17) a person needs to count towards --min-persons (default 1)",
    )
    ctx.add_argument(
        "--workers",
        type=count(1),
        default=None,
        metavar="N",
        help="processes that format contexts (default: the CPU count, up to 4, for 20,000 images or more; else 1)",
    )
    ctx.set_defaults(func=run_contexts)

    show = subparsers.add_parser(
        "show",
        help="draw one image with its boxes, skeletons and context text into a PNG",
        description="Render one image like the paper's Fig. 1: boxes, keypoints joined by COCO's skeleton "
        "(visible and hidden keypoints drawn differently, unlabelled ones left out) and the context text beside it.",
    )
    show.add_argument("image_id", type=count(0), metavar="IMAGE_ID", help="COCO image id, e.g. 42")
    _add_source(show)
    show.add_argument("--out", type=Path, required=True, metavar="FILE.png", help="PNG file to write")
    show.set_defaults(func=run_show)


def run_contexts(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.context import select_scenes

    if args.min_keypoints > 17:
        raise UsageError(f"--min-keypoints is {args.min_keypoints}, but a COCO person has 17 keypoints")
    scenes = load_scenes(args.coco_root, args.split)
    chosen = select_scenes(scenes, min_persons=args.min_persons, min_keypoints=args.min_keypoints, limit=args.limit)
    if not chosen:
        log.warning(
            "none of the %d images of %s has %d or more people with %d or more labelled keypoints",
            len(scenes),
            args.split,
            args.min_persons,
            args.min_keypoints,
        )
    del scenes
    workers = args.workers or (min(os.cpu_count() or 1, 4) if len(chosen) >= PARALLEL_FROM else 1)
    out = _open_out(args.out) if args.out else sys.stdout.buffer
    try:
        with tqdm(total=len(chosen), desc="contexts", unit="img", file=sys.stderr, mininterval=0.5) as bar:
            for count, lines in _encoded_chunks(chosen, args.context, workers):
                out.write(lines)
                bar.update(count)
        out.flush()
    except BrokenPipeError:
        raise  # a reader such as `head` stopped early: main() ends quietly
    except OSError as err:  # a full disk, a vanished mount
        raise UsageError(f"cannot write {args.out or 'standard output'}: {err.strerror or err}") from err
    finally:
        if args.out:
            with contextlib.suppress(OSError):  # already reported above
                out.close()
    log.info("wrote %d contexts%s", len(chosen), f" to {args.out}" if args.out else "")
    return DONE


PARALLEL_FROM = 20_000  # below this, starting processes costs more than it saves
_CHUNK = 2_000
# What forked workers read: set before the pool starts, never pickled.
_shared: tuple[list, str] = ([], DEFAULT_CONTEXT_MODE)


def _encode_range(bounds: tuple[int, int]) -> tuple[int, bytes]:
    """JSON lines of the selected scenes in [start, stop)."""
    import msgspec

    from keypoint_instruct.coco.context import format_context, people

    scenes, mode = _shared
    encode = msgspec.json.Encoder().encode
    rows = []
    for scene in scenes[bounds[0] : bounds[1]]:
        row = {
            "image_id": scene.image_id,
            "file_name": scene.file_name,
            "coco_split": scene.coco_split,
            "width": scene.width,
            "height": scene.height,
            "num_people": people(scene),
            "context": format_context(scene, mode),
        }
        rows.append(encode(row))
    rows.append(b"")
    return bounds[1] - bounds[0], b"\n".join(rows)


def _encoded_chunks(scenes: list, mode: str, workers: int):
    """(count, JSON lines) per chunk of scenes, in order; formatting is pure, so forked workers can share it."""
    global _shared
    _shared = (scenes, mode)
    ranges = [(start, min(start + _CHUNK, len(scenes))) for start in range(0, len(scenes), _CHUNK)]
    try:
        if workers == 1 or len(ranges) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            yield from map(_encode_range, ranges)
            return
        gc.freeze()  # the loaded scenes stay shared with the workers instead of being copied by their collector
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_encode_range, ranges)
    finally:
        gc.unfreeze()
        _shared = ([], DEFAULT_CONTEXT_MODE)


def _open_out(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")  # noqa: SIM115 - closed by the caller
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from err


def run_show(args: argparse.Namespace) -> int:
    from keypoint_instruct.coco.annotations import image_path, load_scenes
    from keypoint_instruct.coco.context import format_context
    from keypoint_instruct.coco.render import save_figure

    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out {args.out} should be a .png file")
    scenes = load_scenes(args.coco_root, args.split)
    scene = scenes.get(args.image_id)
    if scene is None:
        some = ", ".join(str(i) for i in list(scenes)[:5])
        raise UnknownImageError(
            f"image id {args.image_id} is not in {args.split} under {args.coco_root} "
            f"({len(scenes)} images, e.g. {some})"
        )
    try:
        save_figure(image_path(args.coco_root, scene), scene, format_context(scene, args.context), args.out)
    except KeypointInstructError:
        raise
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err.strerror or err}") from err
    print(args.out)
    return DONE
