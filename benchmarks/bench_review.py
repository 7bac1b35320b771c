"""How large the review pages get and how long `review` takes, with answers of GPT-4o's length.

A synthetic COCO split of N images (drawn stick figures) and a cache holding, for every image and task, one of the
prompts' own few-shot responses (written in GPT-4o's manner, 1.3-1.6 KB each) under the teacher's real prompt
version (so the page shows its context). Then `review` with its defaults (200 images, 50 per page) and with
`--limit 0` (every image). Prints the time, the HTML bytes per page and per image, and the picture sizes, also for
the real photographs of ../shared/realposes (COCO-sized JPEGs) when that folder is there.

    .venv/bin/python benchmarks/bench_review.py [--images 2000] [--realposes ../shared/realposes]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keypoint_instruct.coco.annotations import load_scenes  # noqa: E402
from keypoint_instruct.coco.synthetic import write_coco_tree  # noqa: E402
from keypoint_instruct.llm.request import ChatRequest, Completion  # noqa: E402
from keypoint_instruct.llm.store.cache import ResponseCache  # noqa: E402
from keypoint_instruct.review.page import write_review  # noqa: E402
from keypoint_instruct.review.pictures import write_picture  # noqa: E402
from keypoint_instruct.teacher.templates import load_prompt  # noqa: E402
from keypoint_instruct.vocab import TASKS  # noqa: E402

SPLIT = "train2017"
REALPOSES = Path(__file__).resolve().parent.parent.parent / "shared" / "realposes"  # as tests/paths.py


def fill(cache_path: Path, image_ids: list[int]) -> None:
    with ResponseCache(cache_path, create=True) as cache:
        for task in TASKS:
            template = load_prompt(task)
            answers = [response for _, response in template.examples]
            for n, image_id in enumerate(image_ids):
                body = {"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": f"{task} {image_id}"}]}
                request = ChatRequest(task, image_id, SPLIT, template.version, body)
                text = answers[n % len(answers)]
                completion = Completion(text, "stop", 2400, len(text) // 4, 1800, "gpt-4o-2024-08-06")
                cache.put(request, completion, 1.0, cost_usd=0.008)


def report(label: str, out: Path, seconds: float, shown: int) -> None:
    pages = sorted(out.glob("*.html"))
    sizes = [p.stat().st_size for p in pages]
    pictures = [p.stat().st_size for p in (out / "images").glob("*.jpg")]
    per_image = sum(sizes) / shown / 1e3
    print(
        f"{label}: {seconds:.1f} s; {shown} images on {len(pages)} page(s); largest page {max(sizes) / 1e6:.2f} MB, "
        f"{per_image:.1f} KB of HTML per image; pictures median {statistics.median(pictures) / 1e3:.0f} KB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--realposes", type=Path, default=REALPOSES, help="real photographs (COCO layout, val2017)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_coco_tree(tmp / "coco", SPLIT, args.images, seed=0)
        image_ids = sorted(load_scenes(tmp / "coco", SPLIT))
        fill(tmp / "cache.sqlite", image_ids)
        print(f"{len(image_ids)} images, {3 * len(image_ids)} answers of GPT-4o length")
        for label, options in (("defaults (--limit 200)", {}), ("--limit 0 (every image)", {"limit": None})):
            out = tmp / label.split()[0]
            started = time.perf_counter()
            result = write_review(tmp / "coco", SPLIT, tmp / "cache.sqlite", out, **options)
            report(label, out, time.perf_counter() - started, result.shown)
        if args.realposes.is_dir():
            scenes = load_scenes(args.realposes, "val2017").values()
            pictures = [write_picture(args.realposes, scene, tmp / "real") for scene in scenes]
            sizes = [(tmp / "real" / p.src).stat().st_size for p in pictures]
            print(f"realposes pictures (COCO photographs): {', '.join(f'{s / 1e3:.0f} KB' for s in sizes)}")


if __name__ == "__main__":
    main()
