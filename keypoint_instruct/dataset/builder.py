"""The keypoint-instruct dataset as a ``datasets`` builder: one config per task, plus ``all`` (the default).

Takes a response cache and a COCO root, gives the rows of one config. Shaped like datasets' own packaged
``generator`` builder: a dataclass config, ``_info`` with explicit features, ``_split_generators`` passing every
input through ``gen_kwargs``, ``_generate_examples(**gen_kwargs)`` yielding ``(key, example)``. From Python::

    from keypoint_instruct.dataset.builder import KeypointInstruct
    builder = KeypointInstruct(config_name="complex_reasoning", cache_dir="/tmp/kpi",
                               coco_root="coco", coco_split="train2017", cache_path="responses.sqlite")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")

The builder's cache path is ``<cache_dir>/<name>/<config_id>/<version>/<hash>``; the hash is computed from the
inputs (response cache, annotation file, this code), so a changed cache or code never reads a stale build.
``keypoint-instruct build`` runs it per config into a Hub-layout folder (:mod:`keypoint_instruct.dataset.folder`).
(datasets 5 refuses loading scripts: the published folder holds Parquet files, never this module.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets
from datasets.builder import Key

from keypoint_instruct import __version__
from keypoint_instruct.dataset.samples import CONVERSATION_TURNS, BuildStats, iter_rows
from keypoint_instruct.vocab import ALL, DATASET_CONFIGS, TASKS

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
    context_mode: str | None = None  # the answers' context mode (dataset.modes); images with its same context share
    exclude_image_ids: tuple[int, ...] = ()  # images that give no row (a benchmark's: build --exclude-bench)
    verify_poses: bool = True  # drop answers whose pose claims the keypoints disprove (dataset/verify.py)

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


# --- what the builder's hash covers ----------------------------------------------------------------------------


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
    names = ("teacher/templates.py", "teacher/prompts/detailed_description/instructions.txt")  # the instructions
    names += ("teacher/catalogue.py",)
    # the dataset stage, and the COCO stage whose pose facts the leak filters and the verifier read
    stages = [p for stage in ("dataset", "coco") for p in sorted((package / stage).glob("*.py"))]
    stages += sorted((package / "dataset").glob("*.json"))
    return [Path(__file__), *stages, *(package / name for name in names)]


def inputs_hash(cache_path: str | None, coco_root: str | None, coco_split: str) -> str:
    """A fingerprint of the inputs and of the code, so that a builder cache never serves stale rows."""
    parts = [__version__, *(hashlib.sha256(p.read_bytes()).hexdigest() for p in _code_files() if p.is_file())]
    if cache_path:
        parts += [_stat(Path(cache_path)), _stat(Path(f"{cache_path}-wal"))]
    if coco_root:
        parts += [_stat(p) for p in sorted((Path(coco_root) / "annotations").glob(f"*_{coco_split}.json"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def split_scenes(coco_root: str | Path, coco_split: str) -> dict:
    """The scenes of ``coco_split``, read once per state of its annotation files (each config's builder needs them)."""
    return _scenes(str(coco_root), coco_split, inputs_hash(None, str(coco_root), coco_split))


def split_twins(coco_root: str | Path, coco_split: str, context_mode: str) -> dict[int, tuple[int, ...]]:
    """The images of ``coco_split`` that share their context with another (dataset.twins), once per state."""
    return _twins(str(coco_root), coco_split, context_mode, inputs_hash(None, str(coco_root), coco_split))


@lru_cache(maxsize=2)
def _twins(coco_root: str, coco_split: str, context_mode: str, fingerprint: str) -> dict[int, tuple[int, ...]]:
    from keypoint_instruct.dataset.twins import identical_contexts

    return identical_contexts(split_scenes(coco_root, coco_split), context_mode)


@lru_cache(maxsize=2)
def _scenes(coco_root: str, coco_split: str, fingerprint: str) -> dict:
    from keypoint_instruct.coco.annotations import load_scenes

    return load_scenes(coco_root, coco_split)


# --- the builder -------------------------------------------------------------------------------------------------


class KeypointInstruct(datasets.GeneratorBasedBuilder):
    """COCO keypoint-integrated instruction data, from a response cache and the COCO annotations.

    ``stats`` holds what the last generation read and dropped (:class:`BuildStats`), for the card; it is counted in
    this process, so a build that wants it runs without ``num_proc``.
    """

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

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        config = self.config
        for key in ("coco_root", "cache_path"):
            if not getattr(config, key):
                raise ValueError(f"KeypointInstructConfig.{key} is required")
        gen_kwargs = {
            "tasks": list(config.tasks),  # the one list: datasets may give each job its own tasks
            "cache_path": config.cache_path,
            "coco_root": config.coco_root,
            "coco_split": config.coco_split,
            "conversation_turns": config.conversation_turns,
            "embed_images": config.embed_images,
            "teacher_models": config.teacher_models,
            "prompt_versions": config.prompt_versions,
            "context_mode": config.context_mode,
            "exclude_image_ids": config.exclude_image_ids,
            "verify_poses": config.verify_poses,
        }
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs=gen_kwargs)]

    def _generate_examples(
        self,
        tasks: list[str],
        cache_path: str,
        coco_root: str,
        coco_split: str,
        conversation_turns: str,
        embed_images: bool,
        teacher_models: tuple[str, ...] | None,
        prompt_versions: tuple[str, ...] | None,
        context_mode: str | None = None,
        exclude_image_ids: tuple[int, ...] = (),
        verify_poses: bool = True,
    ):
        """``(Key(task index, row index), row)`` for every row of ``tasks``, in task order; drops go to ``stats``.

        Images whose context is the same text as another's share its answer (:mod:`keypoint_instruct.dataset.twins`);
        a detailed description is paired with the instruction its prompt version picked for the image.
        """
        from keypoint_instruct.dataset.twins import with_twins
        from keypoint_instruct.llm.store.cache import ResponseCache
        from keypoint_instruct.teacher.catalogue import known_prompts

        scenes = split_scenes(coco_root, coco_split)
        cache = ResponseCache(cache_path)
        known = known_prompts(cache)
        twins = split_twins(coco_root, coco_split, context_mode) if context_mode else {}
        self.stats = BuildStats()
        models = set(teacher_models) if teacher_models else None
        versions = set(prompt_versions) if prompt_versions else None

        def selected(task: str):
            responses = cache.iter_responses(task=task, coco_split=coco_split)
            if models is not None:
                responses = (r for r in responses if r.model in models)
            if versions is not None:
                responses = (r for r in responses if r.prompt_version in versions)
            return responses

        def same_instruction(answer, twin: int) -> bool:  # a description twin shares the key only if so
            version = answer.prompt_version
            return known.instruction(twin, version) == known.instruction(answer.image_id, version)

        for shard, task in enumerate(tasks):
            shares = same_instruction if task == "detailed_description" else None
            rows = iter_rows(
                with_twins(selected(task), twins, selected(task) if twins else (), shares),
                scenes,
                coco_root=coco_root,
                conversation_turns=conversation_turns,
                embed_images=embed_images,
                instruction=known.instruction,
                stats=self.stats,
                source=f"response cache {cache_path}",
                exclude_image_ids=frozenset(exclude_image_ids),
                verify_poses=verify_poses,
            )
            for index, row in enumerate(rows):
                yield Key(shard, index), row
