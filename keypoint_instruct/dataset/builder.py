"""The keypoint-instruct dataset as a ``datasets`` builder: one config per task, plus ``all`` (the default).

This is what ``keypoint-instruct build`` runs; it can also be used from Python::

    from keypoint_instruct.dataset.builder import KeypointInstruct
    builder = KeypointInstruct(config_name="complex_reasoning", cache_dir="/tmp/kpi",
                               coco_root="coco", coco_split="train2017", cache_path="responses.sqlite")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")

The builder's cache path is ``<cache_dir>/<name>/<config_id>/<version>/<hash>``; the hash is computed from the
inputs (response cache, annotation file, this code), so a changed cache or code never reads a stale build.
(datasets 5 refuses loading scripts: the published folder holds Parquet files, never this module.)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets

from keypoint_instruct import __version__
from keypoint_instruct.dataset.samples import CONVERSATION_TURNS, BuildStats, iter_rows
from keypoint_instruct.vocab import ALL, CONTEXT_MODES, DATASET_CONFIGS, TASKS

logger = logging.getLogger(__name__)

VERSION = datasets.Version("1.0.0")

_DESCRIPTION = (
    "Instruction-following data about human poses and actions, written by a teacher LLM from COCO captions, "
    "bounding boxes and human keypoints."
)
_CONFIG_DESCRIPTIONS = {
    "conversation": "questions and answers about what the people in the image are doing and how they pose",
    "detailed_description": "a pose-focused instruction and a detailed description of the people in the image",
    "complex_reasoning": "one question that needs reasoning about the poses and actions, and its answer",
    ALL: "the three tasks together",
}


def features(embed_images: bool = False) -> datasets.Features:
    """The row schema of ARCHITECTURE.md ("Dataset rows")."""
    text_part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image_id": datasets.Value("int64"),
            "coco_split": datasets.Value("string"),
            "file_name": datasets.Value("string"),
            "task": datasets.Value("string"),
            "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(text_part)}),
            "images": datasets.List(datasets.Image(decode=embed_images)),
            "teacher_model": datasets.Value("string"),
            "prompt_version": datasets.Value("string"),
            "response_key": datasets.Value("string"),
        }
    )


@dataclass
class KeypointInstructConfig(datasets.BuilderConfig):
    """Where the inputs are and how rows are shaped; ``name`` picks the task(s)."""

    coco_root: str | None = None
    coco_split: str = "train2017"
    cache_path: str | None = None
    conversation_turns: str = "single"
    embed_images: bool = False
    teacher_models: tuple[str, ...] | None = None  # build from these teachers' responses only (None: all)
    prompt_versions: tuple[str, ...] | None = None  # and from responses of these prompt versions only (None: all)

    def __post_init__(self):
        super().__post_init__()
        if self.name not in DATASET_CONFIGS:
            raise ValueError(f"config name must be one of {', '.join(DATASET_CONFIGS)}, not {self.name!r}")
        if self.conversation_turns not in CONVERSATION_TURNS:
            raise ValueError(
                f"conversation_turns must be one of {', '.join(CONVERSATION_TURNS)}, not {self.conversation_turns!r}"
            )

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASKS if self.name == ALL else (self.name,)


def _stat(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _code_files() -> list[Path]:
    """The code and tables that decide the rows: this module, parsing, filters, row shaping, instructions."""
    import keypoint_instruct

    package = Path(keypoint_instruct.__file__).parent
    names = ("dataset/parse.py", "dataset/quality.py", "dataset/quality_filters.json", "dataset/samples.py")
    names += ("teacher/templates.py", "teacher/prompts/detailed_description/instructions.txt")  # the instructions
    return [Path(__file__), *(package / name for name in names)]


def inputs_hash(cache_path: str | None, coco_root: str | None, coco_split: str) -> str:
    """A fingerprint of the inputs and of the code, so that a builder cache never serves stale rows."""
    parts = [__version__, *(hashlib.sha256(p.read_bytes()).hexdigest() for p in _code_files() if p.is_file())]
    if cache_path:
        parts += [_stat(Path(cache_path)), _stat(Path(f"{cache_path}-wal"))]
    if coco_root:
        parts += [_stat(p) for p in sorted((Path(coco_root) / "annotations").glob(f"*_{coco_split}.json"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _selected_ids(coco_root: str | Path, coco_split: str) -> list[int]:
    """The image ids `generate` selects by default (every image with a person with a labelled keypoint)."""
    from keypoint_instruct.coco.context import select_scenes

    scenes = _scenes(str(coco_root), coco_split, inputs_hash(None, str(coco_root), coco_split))
    return [scene.image_id for scene in select_scenes(scenes)]


@lru_cache(maxsize=2)
def _scenes(coco_root: str, coco_split: str, fingerprint: str) -> dict:
    from keypoint_instruct.coco.annotations import load_scenes

    return load_scenes(coco_root, coco_split)


class KeypointInstruct(datasets.GeneratorBasedBuilder):
    """COCO keypoint-integrated instruction data, from a response cache and the COCO annotations."""

    BUILDER_CONFIG_CLASS = KeypointInstructConfig
    BUILDER_CONFIGS = [
        KeypointInstructConfig(name=name, version=VERSION, description=_CONFIG_DESCRIPTIONS[name])
        for name in DATASET_CONFIGS
    ]
    DEFAULT_CONFIG_NAME = ALL
    VERSION = VERSION

    def __init__(self, *args, hash: str | None = None, **kwargs):  # noqa: A002 - datasets' own argument name
        if hash is None:
            hash = inputs_hash(
                kwargs.get("cache_path"), kwargs.get("coco_root"), kwargs.get("coco_split", "train2017")
            )
        super().__init__(*args, hash=hash, **kwargs)
        self.stats = BuildStats()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=f"{_DESCRIPTION} Config {self.config.name}: {self.config.description}.",
            features=features(self.config.embed_images),
            license="cc-by-4.0",
        )

    def _split_generators(self, dl_manager):
        for key in ("coco_root", "cache_path"):
            if not getattr(self.config, key):
                raise ValueError(f"KeypointInstructConfig.{key} is required")
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={})]

    def _generate_examples(self):
        from keypoint_instruct.llm.store.cache import ResponseCache
        from keypoint_instruct.teacher.templates import pick_instruction

        config = self.config
        scenes = _scenes(
            str(config.coco_root), config.coco_split, inputs_hash(None, config.coco_root, config.coco_split)
        )
        cache = ResponseCache(config.cache_path)
        self.stats = BuildStats()
        models = set(config.teacher_models) if config.teacher_models else None
        versions = set(config.prompt_versions) if config.prompt_versions else None
        for task in config.tasks:
            responses = cache.iter_responses(task=task, coco_split=config.coco_split)
            if models is not None:
                responses = (r for r in responses if r.model in models)
            if versions is not None:
                responses = (r for r in responses if r.prompt_version in versions)
            rows = iter_rows(
                responses,
                scenes,
                coco_root=config.coco_root,
                conversation_turns=config.conversation_turns,
                embed_images=config.embed_images,
                instruction=pick_instruction,
                stats=self.stats,
                source=f"response cache {config.cache_path}",
            )
            for row in rows:
                yield row["id"], row


# --- writing a dataset folder (what `keypoint-instruct build` does) -------------------------------------------

MAX_SHARD_BYTES = 500 * 1024 * 1024  # in-memory Arrow bytes per Parquet shard (the Hub's usual shard size)
_FOLDER_ENTRIES = {"README.md", *DATASET_CONFIGS}


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that is a file or a folder of other files (first: --overwrite would not help), then a
    dataset folder without --overwrite."""
    from keypoint_instruct.errors import DatasetBuildError

    if out.exists() and not out.is_dir():
        raise DatasetBuildError(f"--out {out} is a file, not a folder")
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if not entries:
        return
    foreign = sorted(entries - _FOLDER_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        package = " (a Python package: a folder of code)" if "__init__.py" in entries else ""
        raise DatasetBuildError(
            f"--out {out} is not a dataset folder written by `keypoint-instruct build`: it holds {shown}{package}; "
            "pick a new or empty folder for --out"
        )
    if not overwrite:
        raise DatasetBuildError(f"--out {out} is not empty; pass --overwrite to replace the dataset folder in it")


def _write_shards(table, folder: Path, *, max_shard_bytes: int, row_group_size: int) -> list[Path]:
    """Contiguous Parquet shards of ``table``, named like the Hub's: train-00000-of-00002.parquet."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    num_shards = max(1, -(-table.nbytes // max_shard_bytes))
    per_shard = -(-table.num_rows // num_shards) if table.num_rows else 0
    if per_shard:  # 5 rows over 4 shards is 2 per shard: 3 shards, none empty
        num_shards = -(-table.num_rows // per_shard)
    paths = []
    for index in range(num_shards):
        path = folder / f"train-{index:05d}-of-{num_shards:05d}.parquet"
        part = table.slice(index * per_shard, per_shard) if per_shard else table
        pq.write_table(part, path, row_group_size=row_group_size, compression="zstd")
        paths.append(path)
    return paths


def _unwrap(err: Exception) -> Exception:
    """The domain error behind a ``DatasetGenerationError``, if there is one."""
    from keypoint_instruct.errors import KeypointInstructError

    cause = err
    while cause is not None:
        if isinstance(cause, KeypointInstructError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return err


def _warn_mixed_prompt_versions(stats: BuildStats) -> None:
    """One warning per task whose rows come from several prompt versions (context modes, edited prompts)."""
    from keypoint_instruct.teacher.templates import load_prompt

    for task in TASKS:
        versions = {v: n for (t, v), n in sorted(stats.sample_prompt_versions.items()) if t == task}
        if len(versions) > 1:
            current = {load_prompt(task, mode).version: mode for mode in CONTEXT_MODES}
            logger.warning(
                "%s rows come from %d prompt versions (%s): the newest answer per image was used; pass "
                "--prompt-version to build from one (each context mode and each prompt edit has its own)",
                task,
                len(versions),
                ", ".join(f"{v} ({current.get(v, 'an earlier prompt')}): {n:,}" for v, n in versions.items()),
            )


def _warn_missing_images(tables: list, image_dir: Path) -> None:
    """One warning when images the rows point to are not in ``image_dir``: the build needs none, training does."""
    names = sorted({name for table in tables for name in table.column("file_name").to_pylist()})
    missing = [name for name in names if not (image_dir / name).is_file()]
    if missing:
        logger.warning(
            "%d of the %d images the rows refer to are not in %s (first: %s); training reads them from there "
            "(train_sft.py --coco_root), so copy them in before training",
            len(missing),
            len(names),
            image_dir,
            missing[0],
        )


def _warn_unanswered(stats: BuildStats, selected: Sequence[int], coco_split: str) -> None:
    """One warning when images `generate` selects have no response for a task it answered others of (a shard's
    cache built alone, a run stopped early): the build would quietly hold part of the split."""
    missing: dict[int, list[str]] = {}  # images without a response -> the tasks that lack them
    for task in TASKS:
        answered = stats.answered.get(task)
        count = sum(1 for image_id in selected if image_id not in answered) if answered else 0
        if count:
            missing.setdefault(count, []).append(task)
    if missing:
        (first, tasks), *others = missing.items()
        said = f"{first:,} selected images of {coco_split} have no response for task {', '.join(tasks)}"
        said += "".join(f"; {count:,} for task {', '.join(tasks)}" for count, tasks in others)
        logger.warning("%s (a shard not merged? run `cache merge`)", said)


def _check_split(cache_path: Path, coco_split: str) -> None:
    """One clear line when the cache has nothing for ``coco_split`` (before any builder runs)."""
    from keypoint_instruct.errors import DatasetBuildError
    from keypoint_instruct.llm.store.cache import ResponseCache

    with ResponseCache(cache_path) as cache:
        held = cache.splits()
        if coco_split in held:
            return
        failed = cache.failed_keys(coco_split)
    has = ", ".join(f"{split} ({n} responses)" for split, n in held.items())
    has = f"it has: {has}" if has else "it is empty" if not failed else "it has no responses at all"
    if failed:
        what = (
            f"1 failed request for {coco_split} is"
            if failed == 1
            else f"{failed:,} failed requests for {coco_split} are"
        )
        has += f"; {what} recorded: run `keypoint-instruct generate` again"
    raise DatasetBuildError(f"the cache {cache_path} holds no responses for {coco_split} ({has})")


def _check_selection(
    cache_path: Path, coco_split: str, teacher_models: tuple[str, ...] | None, prompt_versions: tuple[str, ...] | None
) -> None:
    """Refuse to mix teacher models unasked, and a ``--teacher-model`` or ``--prompt-version`` without responses.

    Where several models answered one image, the newest answer is used: without this check, an offline-teacher run
    into a cache of paid GPT-4o answers silently replaced them.
    """
    from collections import Counter

    from keypoint_instruct.errors import DatasetBuildError
    from keypoint_instruct.llm.store.cache import ResponseCache

    counts = {"model": Counter(), "prompt_version": Counter()}
    with ResponseCache(cache_path) as cache:
        for model, prompt_version, n in cache.answer_sources(coco_split, TASKS):
            counts["model"][model] += n
            counts["prompt_version"][prompt_version] += n
    for column, what, wanted in (
        ("model", "teacher model", teacher_models),
        ("prompt_version", "prompt version", prompt_versions),
    ):
        held = counts[column]
        unknown = [value for value in wanted or () if value not in held]
        if unknown:
            has = ", ".join(f"{value}: {n}" for value, n in sorted(held.items()))
            raise DatasetBuildError(
                f"the cache {cache_path} has no {coco_split} responses of {what} {', '.join(unknown)} "
                f"(it has {has or 'none'})"
            )
    held = counts["model"]
    has = ", ".join(f"{model}: {n}" for model, n in sorted(held.items()))
    if not teacher_models and len(held) > 1:
        raise DatasetBuildError(
            f"the cache {cache_path} holds {coco_split} responses of {len(held)} teacher models ({has}); pass "
            "--teacher-model to build from one (repeat it to mix them on purpose: the newest answer per image wins)"
        )


def build_folder(
    *,
    coco_root: str | Path,
    coco_split: str,
    cache_path: str | Path,
    out: str | Path,
    version: str,
    overwrite: bool = False,
    conversation_turns: str = "single",
    embed_images: bool = False,
    teacher_models: Sequence[str] | None = None,
    prompt_versions: Sequence[str] | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
):
    """Run the builder for every task config and write a Hub-layout dataset folder; returns (summaries, stats).

    ``all`` is written as the three task tables one after the other, which is exactly what the ``all`` config
    generates (tests/test_builder.py checks it), without parsing every response twice.
    ``teacher_models`` picks the teachers whose responses are read; a cache holding several is refused without it.
    ``prompt_versions`` picks the prompt versions likewise (several per task give a warning, not an error).
    The folder is written next to ``out`` and moved into place at the end, so a failed build leaves ``out`` as it
    was. Parquet files carry no timestamps: the same inputs and version give byte-identical files.
    """
    import shutil
    import tempfile

    import pyarrow as pa

    from keypoint_instruct.dataset.card import ConfigSummary, check_version, render_card
    from keypoint_instruct.errors import DatasetBuildError, InputNotFoundError

    check_version(version)
    out, coco_root, cache_path = Path(out), Path(coco_root), Path(cache_path)
    if not cache_path.is_file():
        raise InputNotFoundError(f"response cache {cache_path} not found; run `keypoint-instruct generate` first")
    if not coco_root.is_dir():
        raise InputNotFoundError(f"COCO root {coco_root} not found")
    _check_split(cache_path, coco_split)
    teacher_models = tuple(dict.fromkeys(teacher_models)) if teacher_models else None
    prompt_versions = tuple(dict.fromkeys(prompt_versions)) if prompt_versions else None
    _check_selection(cache_path, coco_split, teacher_models, prompt_versions)
    _check_out(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as err:
        raise DatasetBuildError(f"cannot write the dataset folder --out {out}: {err.strerror or err}") from None
    summaries, stats = [], BuildStats()
    yaml_features = features(embed_images)._to_yaml_list()
    row_group_size = 100 if embed_images else 10_000

    def write(name: str, table, num_bytes: int) -> None:
        paths = _write_shards(table, staging / name, max_shard_bytes=max_shard_bytes, row_group_size=row_group_size)
        size = sum(p.stat().st_size for p in paths)
        summaries.append(ConfigSummary(name, table.num_rows, num_bytes, size, yaml_features))
        logger.info("%s: %d rows in %d shard(s)", name, table.num_rows, len(paths))

    try:
        tables, total_bytes, empty = [], 0, []
        with tempfile.TemporaryDirectory(prefix="keypoint-instruct-builder-") as cache_dir:
            for name in TASKS:
                builder = KeypointInstruct(
                    config_name=name,
                    cache_dir=cache_dir,
                    coco_root=str(coco_root),
                    coco_split=coco_split,
                    cache_path=str(cache_path),
                    conversation_turns=conversation_turns,
                    embed_images=embed_images,
                    teacher_models=teacher_models,
                    prompt_versions=prompt_versions,
                    version=version,
                )
                try:
                    builder.download_and_prepare()
                except datasets.exceptions.DatasetGenerationError as err:
                    raise _unwrap(err) from None
                stats.merge(builder.stats)
                split_info = builder.info.splits.get("train") if builder.info.splits else None
                if not split_info or not split_info.num_examples:
                    empty.append(name)
                    continue
                table = builder.as_dataset(split="train").data.table
                write(name, table, split_info.num_bytes)
                tables.append(table)
                total_bytes += split_info.num_bytes
            if not tables:
                dropped = ", ".join(f"{n} {reason}" for reason, n in stats.dropped_by_reason().items() if n)
                raise DatasetBuildError(
                    f"no usable {coco_split} responses in {cache_path} "
                    f"(read {sum(stats.responses.values())}, dropped: {dropped or 'none'})"
                )
            for name in empty:  # said only when the build goes on without them
                logger.warning("config %s has no rows; it is left out of the folder", name)
            _warn_mixed_prompt_versions(stats)
            _warn_unanswered(stats, _selected_ids(coco_root, coco_split), coco_split)
            write(ALL, pa.concat_tables(tables), total_bytes)
        if not embed_images:
            _warn_missing_images(tables, coco_root / coco_split)
        card = render_card(
            summaries,
            stats,
            version=version,
            coco_split=coco_split,
            conversation_turns=conversation_turns,
            embed_images=embed_images,
            dataset_ref=str(out),
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return summaries, stats
