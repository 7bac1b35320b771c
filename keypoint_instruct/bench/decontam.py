"""No training image in HPAUB: which candidate images ``bench build`` must leave out, and the record of it.

COCO's image ids are shared across the years and its 2017 training split holds most of val2014's images, so a
benchmark drawn from val2014 next to a model trained on train2017 data would be judged on its training images. The
build reads the image ids of every COCO training split with an annotation file under ``--coco-root``
(:mod:`keypoint_instruct.coco.splits`: ``train2014``, ``train2017``) and of each ``--exclude-training`` source (a
dataset folder written by ``build``: its rows' images; a response cache: the images of its teacher answers for other
splits than the benchmark's, since the benchmark's own answers live there too), and never draws one of them. The
rule, its sources and the counts go into ``meta.json`` under ``decontamination``; ``--allow-training-overlap``
keeps the candidates (the meta and the report's header then say so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from keypoint_instruct.errors import BenchmarkError, InputNotFoundError
from keypoint_instruct.vocab import TASKS

log = logging.getLogger(__name__)

RULE = (
    "a candidate image whose COCO id is in a training split under the COCO root (train2014, train2017: ids are shared "
    "across years) or in an --exclude-training source is never drawn"
)


@dataclass(frozen=True)
class Source:
    """Images that may have trained a model: a COCO training split, a dataset folder or a response cache."""

    label: str  # what the user sees: "train2017 (annotations/instances_train2017.json)"
    kind: str  # "coco_split" | "dataset" | "cache"
    path: str
    ids: frozenset[int] = field(repr=False)


def coco_sources(coco_root: str | Path, split: str) -> list[Source]:
    """The COCO training splits with an annotation file under ``coco_root`` (``split`` itself left out)."""
    from keypoint_instruct.coco.splits import training_split_ids

    found = []
    for ids in training_split_ids(coco_root, besides=split):
        relative = ids.path.relative_to(Path(coco_root)) if ids.path.is_relative_to(Path(coco_root)) else ids.path
        found.append(Source(f"{ids.split} ({relative})", "coco_split", str(relative), ids.ids))
    return found


def training_source(path: str | Path, split: str) -> Source:
    """An ``--exclude-training`` source: a dataset folder (its rows' images) or a response cache (its answers')."""
    path = Path(path)
    if path.is_dir():
        from keypoint_instruct.dataset.exclusion import dataset_image_ids

        return Source(f"dataset {path}", "dataset", str(path), frozenset(dataset_image_ids(path)))
    if not path.is_file():
        raise InputNotFoundError(f"--exclude-training {path} does not exist (a dataset folder or a response cache)")
    from keypoint_instruct.llm.store.cache import ResponseCache

    with ResponseCache(path) as cache:
        by_split = cache.image_ids(TASKS)
    ids = frozenset().union(*(found for other, found in by_split.items() if other != split))
    splits = ", ".join(sorted(other for other in by_split if other != split)) or "none"
    if split in by_split:
        log.info("--exclude-training %s: its %s answers are not counted as training images", path, split)
    return Source(f"cache {path} (splits {splits})", "cache", str(path), ids)


@dataclass
class Decontamination:
    """What the draw leaves out, and how many of the candidates each source holds."""

    sources: list[Source]
    allow_overlap: bool = False
    candidates: int = 0
    in_training: int = 0  # candidates found in any source
    per_source: dict[str, int] = field(default_factory=dict)
    drawn_in_training: int = 0  # with --allow-training-overlap: drawn images that are training images

    @property
    def ids(self) -> frozenset[int]:
        return frozenset().union(*(s.ids for s in self.sources))

    def filter(self, candidates: list) -> list:
        """``candidates`` (scenes) without the training images, unless the overlap is allowed; counts kept."""
        training = self.ids
        self.candidates = len(candidates)
        self.per_source = {s.label: sum(1 for c in candidates if c.image_id in s.ids) for s in self.sources}
        kept = [c for c in candidates if c.image_id not in training]
        self.in_training = len(candidates) - len(kept)
        return candidates if self.allow_overlap else kept

    def note_drawn(self, image_ids) -> None:
        self.drawn_in_training = len(set(image_ids) & self.ids)

    def summary(self) -> str:
        """One line: how many candidates were left out and why (or, allowed, how many drawn images trained)."""
        why = "; ".join(f"in {label}: {n:,}" for label, n in self.per_source.items()) or "no training source found"
        if self.allow_overlap:
            return (
                f"--allow-training-overlap: {self.in_training:,} of {self.candidates:,} candidate images are training "
                f"images ({why}); {self.drawn_in_training} of the drawn images are"
            )
        return f"left out {self.in_training:,} of {self.candidates:,} candidate images as training images ({why})"

    def record(self) -> dict:
        """The ``decontamination`` entry of meta.json."""
        return {
            "rule": RULE,
            "allow_training_overlap": self.allow_overlap,
            "sources": [{"kind": s.kind, "path": s.path, "images": len(s.ids)} for s in self.sources],
            "candidates": self.candidates,
            "candidates_in_training": self.in_training,
            "candidates_per_source": dict(self.per_source),
            **({"drawn_in_training": self.drawn_in_training} if self.allow_overlap else {}),
        }


def decontamination(coco_root, split: str, exclude_training=(), *, allow_overlap: bool = False) -> Decontamination:
    """The sources of training images for a benchmark drawn from ``split`` under ``coco_root``."""
    from keypoint_instruct.coco.splits import TRAINING_SPLITS

    if split in TRAINING_SPLITS and not allow_overlap:
        raise BenchmarkError(
            f"--split {split} is a COCO training split: a benchmark drawn from it is made of training images; draw "
            "from val2014 (the paper's) or val2017, or pass --allow-training-overlap if you mean it"
        )
    sources = coco_sources(coco_root, split) + [training_source(p, split) for p in dict.fromkeys(exclude_training)]
    if not sources:
        log.warning(
            "no training split (train2014, train2017) under %s and no --exclude-training: nothing is left out; a "
            "model trained on train2017 data has seen most val2014 images",
            coco_root,
        )
    return Decontamination(sources, allow_overlap)


def describe_record(record: dict | None) -> str:
    """The ``decontamination`` entry of a meta.json in words (the benchmark card, ``bench build``'s last line)."""
    if not record:
        return "not checked (built before keypoint-instruct left training images out)"
    kinds = {"coco_split": "COCO", "dataset": "dataset", "cache": "cache"}
    sources = "; ".join(
        f"{kinds.get(s['kind'], s['kind'])} `{s['path']}`, {s['images']:,} images" for s in record["sources"]
    )
    sources = f"sources: {sources}" if sources else "no training split or source found"
    if record.get("allow_training_overlap"):
        return (
            f"not left out (--allow-training-overlap): {record.get('drawn_in_training', '?')} of the drawn images are "
            f"training images ({sources})"
        )
    return (
        f"{record['candidates_in_training']:,} of {record['candidates']:,} candidate images were training images and "
        f"could not be drawn ({sources})"
    )


def report_header(results) -> list[str]:
    """Lines for the top of a report whose benchmark was built with ``--allow-training-overlap``."""
    for result in results:
        record = (getattr(result, "bench_meta", None) or {}).get("decontamination") or {}
        if record.get("allow_training_overlap"):
            drawn = record.get("drawn_in_training")
            some = f"{drawn} of its images are" if drawn is not None else "its images may be"
            return [
                f"**Warning: this benchmark was built with --allow-training-overlap: {some} in a training set, so "
                "scores may reward memorisation rather than understanding.**",
                "",
            ]
    return []
