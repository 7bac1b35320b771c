"""Helpers of train_sft.py: load and check the dataset, feed padded images, freeze the tower, fix saved keys.

Kept apart from the script so that tests, the benchmark and the demo use the same code paths. Heavy libraries are
imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.images import pad_to_square, resolve_image

logger = logging.getLogger(__name__)

MAX_MISSING_SHOWN = 3


def load_sft_dataset(name: str, configs: Sequence[str], *, revision: str | None = None, split: str = "train"):
    """Load and concatenate the requested configs of a dataset folder or Hub repo; refuse unknown configs."""
    from datasets import Image, List, concatenate_datasets, get_dataset_config_names
    from datasets.exceptions import DatasetNotFoundError

    path = Path(name)
    if (name.startswith((".", "/")) or path.exists()) and not path.is_dir():
        raise TrainingConfigError(f"dataset folder not found: {name} (expected <config>/train-*.parquet + README.md)")
    if revision is not None and path.is_dir():
        raise TrainingConfigError(
            f"dataset_revision {revision} applies to a Hub repo, but {name} is a local folder (it has no revisions): "
            "pass the Hub repo id, or drop dataset_revision and point dataset_name at the version's folder"
        )
    if path.is_dir():
        _check_dataset_folder(name)
    try:
        available = get_dataset_config_names(name, revision=revision)
    except (DatasetNotFoundError, OSError, ValueError) as err:
        raise TrainingConfigError(f"cannot read dataset {name}: {' '.join(str(err).split())}") from err
    missing = [config for config in configs if config not in available]
    if missing:
        raise TrainingConfigError(
            f"dataset {name} has no config {', '.join(missing)}: it has {', '.join(sorted(available))}"
        )
    parts = []
    for config in configs:
        try:
            part = _load_config(name, config, revision=revision, split=split, local=path.is_dir())
        except (OSError, ValueError) as err:
            raise TrainingConfigError(f"cannot load {name} config {config}: {' '.join(str(err).split())}") from err
        for column in ("messages", "images"):
            if column not in part.column_names:
                raise TrainingConfigError(
                    f"dataset {name} config {config} has no `{column}` column: expected rows with messages + images"
                )
        # One config may embed image bytes (Image()) and another store paths (Image(decode=False)): undecoded, both
        # are {bytes, path} and mix; training decodes them in image_transform either way.
        if part.features["images"] != List(Image(decode=False)):
            part = part.cast_column("images", List(Image(decode=False)))
        parts.append(part)
    try:
        dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    except ValueError as err:  # columns that differ in name or type
        raise TrainingConfigError(
            f"configs {', '.join(configs)} of {name} cannot be mixed: {' '.join(str(err).split())}"
        ) from err
    if len(dataset) == 0:
        raise TrainingConfigError(f"dataset {name} ({', '.join(configs)}, split {split}) has no rows")
    logger.info("training on %d rows of %s (%s)", len(dataset), name, ", ".join(configs))
    return dataset


def _check_dataset_folder(name: str) -> None:
    """Refuse a local folder whose README.md lists no ``configs:`` (datasets says 'No (supported) data files')."""
    folder = Path(name)
    try:
        card = (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        card = ""
    front = card.split("\n---", 1)[0] if card.startswith("---") else ""
    if re.search(r"^configs:", front, flags=re.MULTILINE):
        return
    what = "no README.md" if not (folder / "README.md").is_file() else "its README.md lists no `configs:`"
    collides = ""
    if (folder / "__init__.py").is_file():
        collides = (
            f"; {name} here is a Python package (the project's code, from the repository root): the name collides "
            "with it, so give the dataset folder's path or the Hub repo id as ORG/NAME"
        )
    raise TrainingConfigError(
        f"dataset_name {name} is a folder but not a dataset folder written by `keypoint-instruct build` ({what}; "
        f"expected <config>/train-*.parquet + README.md){collides}"
    )


def _load_config(name: str, config: str, *, revision: str | None, split: str, local: bool):
    """One config of a dataset folder or Hub repo.

    datasets 5.2 caches a local folder's config under the folder's name and the config alone: a folder rebuilt in place
    (``build --overwrite``) or another folder of the same name would load the Arrow cache of the first one, silently.
    The folder's card only says which Parquet files form the config; they are loaded as Parquet files, whose cache
    key includes each file's modification time.
    """
    from datasets import load_dataset, load_dataset_builder

    if not local:
        return load_dataset(name, config, revision=revision, split=split)
    data_files = load_dataset_builder(name, config).config.data_files
    if data_files is None or split not in data_files:
        raise ValueError(f"config {config} has no split {split!r} (it has {', '.join(data_files or {}) or 'none'})")
    return load_dataset("parquet", data_files={split: list(data_files[split])}, split=split)


def check_training_numbers(args) -> None:
    """Refuse the SFTConfig numbers that would crash mid-launch or train nothing, before anything is loaded."""
    positive = ("per_device_train_batch_size", "gradient_accumulation_steps")
    for name in positive:
        value = getattr(args, name)
        if value < 1:
            raise TrainingConfigError(f"{name} {value}: expected a whole number of at least 1")
    if not args.learning_rate > 0:
        raise TrainingConfigError(f"learning_rate {args.learning_rate}: expected a positive number such as 2e-5")
    for name in ("weight_decay", "adam_epsilon", "num_train_epochs", "dataloader_num_workers"):
        value = getattr(args, name)
        if value < 0:
            raise TrainingConfigError(f"{name} {value}: expected 0 or more")
    for name in ("adam_beta1", "adam_beta2"):
        value = getattr(args, name)
        if not 0 <= value < 1:
            raise TrainingConfigError(f"{name} {value}: expected a number in [0, 1)")
    if args.max_steps == 0 or args.max_steps < -1:
        raise TrainingConfigError(
            f"max_steps {args.max_steps}: expected a positive number of optimizer steps, or -1 to train "
            "num_train_epochs epochs"
        )
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        raise TrainingConfigError(
            f"num_train_epochs {args.num_train_epochs} with max_steps -1 trains nothing: set num_train_epochs "
            "above 0 or max_steps to a positive number of steps"
        )
    if str(getattr(args.save_strategy, "value", args.save_strategy)) == "steps" and not args.save_steps > 0:
        raise TrainingConfigError(f"save_steps {args.save_steps}: expected a positive number with save_strategy steps")


def resolve_resume(resume: str | bool | None, output_dir: str | Path) -> str | None:
    """The checkpoint folder to resume from, checked before any model is loaded.

    ``resume`` is None/false (start fresh), true/last (the newest ``checkpoint-<step>`` in ``output_dir``) or a
    checkpoint folder. A checkpoint without optimizer state (``save_only_model: true``) is refused: transformers would
    resume it with a fresh optimizer (plain) or fail mid-launch (DeepSpeed).
    """
    text = str(resume).strip().lower() if resume is not None else "false"
    if text in ("false", "no", "none", ""):
        return None
    if text in ("true", "yes", "last"):
        from transformers.trainer_utils import get_last_checkpoint

        found = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if found is None:
            raise TrainingConfigError(
                f"resume_from_checkpoint {resume}: no checkpoint-<step> folder in output_dir {output_dir}"
            )
        checkpoint = Path(found)
    else:
        checkpoint = Path(str(resume))
        if not (checkpoint / "trainer_state.json").is_file():
            raise TrainingConfigError(
                f"resume_from_checkpoint {resume} is not a checkpoint folder "
                "(expected <output_dir>/checkpoint-<step> holding trainer_state.json), or pass true for the newest"
            )
    if not (checkpoint / "optimizer.pt").is_file() and not any(checkpoint.glob("global_step*")):
        raise TrainingConfigError(
            f"checkpoint {checkpoint} holds weights only (save_only_model: true), so training cannot resume from it: "
            "set save_only_model: false for runs you want to resume (a 7B ZeRO-3 checkpoint then also holds ~85 GB "
            f"of optimizer state), or start a new run from these weights with --model_name_or_path {checkpoint}"
        )
    logger.info("resuming from %s", checkpoint)
    return str(checkpoint)


def _image_entries(dataset) -> list[Any]:
    """Every entry of the ``images`` column without decoding any image (Arrow structs -> dicts)."""
    import pyarrow.compute as pc

    column = dataset.select_columns(["images"]).with_format("arrow")[:].column("images")
    return pc.list_flatten(column).to_pylist()


def check_images(dataset, coco_root: str | Path | None) -> int:
    """Raise before training when an image that rows reference by path is not under ``coco_root``.

    Returns the number of distinct image files checked (entries that embed bytes need no file).
    """
    paths = set()
    embedded = 0
    for entry in _image_entries(dataset):
        if isinstance(entry, dict) and entry.get("bytes"):
            embedded += 1
        elif isinstance(entry, dict) and entry.get("path"):
            paths.add(entry["path"])
        elif isinstance(entry, str):
            paths.add(entry)
    relative = sorted(p for p in paths if not Path(p).is_absolute())
    if relative and coco_root is None:
        raise TrainingConfigError(
            f"the dataset references {len(relative)} images by relative path (e.g. {relative[0]}): "
            "pass --coco_root <COCO root>, the folder that holds <split>/<file_name>"
        )
    root = Path(coco_root) if coco_root is not None else Path("/")
    missing = sorted(p for p in paths if not (root / p).is_file())
    if missing:
        shown = ", ".join(str(root / p) for p in missing[:MAX_MISSING_SHOWN])
        more = f" and {len(missing) - MAX_MISSING_SHOWN} more" if len(missing) > MAX_MISSING_SHOWN else ""
        raise TrainingConfigError(
            f"{len(missing)} of {len(paths)} images missing under coco_root {root}: {shown}{more}"
        )
    if paths:
        logger.info("all %d referenced image files found", len(paths))
    if embedded:
        logger.info("%d images embedded in the dataset (no image files needed)", embedded)
    return len(paths)


def image_transform(coco_root: str | Path | None, *, pad: bool = True) -> Callable[[dict], dict]:
    """A ``Dataset.with_transform`` function: ``images`` entries -> RGB PIL images, padded to square by default."""

    def transform(batch: dict) -> dict:
        images = []
        for row in batch["images"]:
            loaded = [resolve_image(value, coco_root) for value in row]
            images.append([pad_to_square(image) for image in loaded] if pad else loaded)
        return {"messages": batch["messages"], "images": images}

    return transform


def _numel(param) -> int:
    return int(getattr(param, "ds_numel", 0) or param.numel())  # ZeRO-3 leaves numel() == 0 on partitioned params


def freeze_vision_tower(model) -> tuple[int, int]:
    """Freeze the vision tower (LLaVA-1.5 trains projector + LLM); return (trainable, total) parameter counts."""
    tower = getattr(model, "vision_tower", None)
    if tower is None:
        tower = getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is None:
        raise TrainingConfigError(f"{type(model).__name__} has no vision_tower to freeze (expected a LLaVA model)")
    tower.requires_grad_(False)
    params = list(model.parameters())
    trainable = sum(_numel(p) for p in params if p.requires_grad)
    total = sum(_numel(p) for p in params)
    logger.info("vision tower frozen: %d of %d parameters train", trainable, total)
    return trainable, total


@contextmanager
def without_zero3_init() -> Iterator[None]:
    """Build a model normally even inside a ZeRO-3 run: zero.Init is collective, and only rank 0 builds here."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def module_key_map(model) -> Callable[[str], str]:
    """Map any key transformers can load into ``model`` (a saved name, the legacy llava-hf layout, a ZeRO-3 save's
    doubled ``model.``) to the name of the module it fills, as ``model.state_dict()`` names it."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    keys = dict.fromkeys(model.state_dict())  # names only: rename_source_key reads the keys of its meta state dict
    transforms = get_model_conversion_mapping(model, add_legacy=True)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]

    def module_key(key: str) -> str:
        return rename_source_key(key, renamings, converters, model.base_model_prefix, keys)[0]

    return module_key


def canonical_names(config) -> tuple[Callable[[str], str | None], set[str]]:
    """How transformers names the weights of a fresh model of ``config`` on disk, and a map to those names.

    The map takes any key transformers can load (see :func:`module_key_map`) to the module it fills and back to that
    module's canonical saved name; None for a key that fills nothing. Built on the meta device: no memory, no weights.
    """
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.core_model_loading import revert_weight_conversion

    with torch.device("meta"), without_zero3_init():
        reference = AutoModelForImageTextToText.from_config(config)
    meta = reference.state_dict()
    module_key = module_key_map(reference)
    saved_name = {key: next(iter(revert_weight_conversion(reference, {key: meta[key]}))) for key in meta}

    def canonical(key: str) -> str | None:
        return saved_name.get(module_key(key))

    expected = set(saved_name.values())
    if getattr(config.get_text_config(), "tie_word_embeddings", False):
        expected = {key for key in expected if not key.endswith("lm_head.weight")}
    return canonical, expected


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a save_pretrained folder: one file, or the shards its index names."""
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if index.is_file():
        return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


def load_checkpoint_weights(model, checkpoint: str | Path) -> int:
    """Load the weights of a Trainer checkpoint into ``model`` in place; return the number of tensors loaded.

    Trainer checkpoints are save_pretrained folders, whose keys transformers 5.24 writes in the saved (legacy
    llava-hf) layout, while the Trainer's own resume loads them with a bare ``load_state_dict``: for LLaVA it matches
    no key, warns and trains on from the initial weights. Here every key goes through transformers' own conversion
    map first, and a key that fills nothing or a weight the checkpoint lacks is an error.
    """
    from safetensors.torch import load_file

    checkpoint = Path(checkpoint)
    files = _weight_files(checkpoint)
    if not files:
        raise TrainingConfigError(f"checkpoint {checkpoint} has no *.safetensors weights to resume from")
    module_key = module_key_map(model)
    current = model.state_dict()
    loaded = {}
    for file in files:
        for key, tensor in load_file(file, device="cpu").items():
            name = module_key(key)
            if name not in current:
                kind = model.config.model_type
                raise TrainingConfigError(f"{file} holds {key}, which is no weight of a {kind} model")
            loaded[name] = tensor
    shared = {current[name].data_ptr() for name in loaded}  # tied weights (lm_head = embeddings) come along
    missing = sorted(name for name in current if name not in loaded and current[name].data_ptr() not in shared)
    if missing:
        raise TrainingConfigError(
            f"checkpoint {checkpoint} lacks {len(missing)} weights (e.g. {', '.join(missing[:MAX_MISSING_SHOWN])})"
        )
    model.load_state_dict(loaded, strict=False)
    logger.info("loaded %d weights from %s", len(loaded), checkpoint)
    return len(loaded)


def fix_saved_keys(output_dir: str | Path, config) -> int:
    """Give every saved weight its canonical name and check that none is missing.

    Under ZeRO-3 (model loaded with zero3 init), transformers 5.24 saves the language model as
    ``language_model.model.model.*``; transformers itself reloads that, other tools do not. Rewrites the safetensors
    files (and the shard index) in place; returns the number of keys renamed.
    """
    from safetensors.torch import load_file, save_file

    output_dir = Path(output_dir)
    files = sorted(output_dir.glob("*.safetensors"))
    if not files:
        raise TrainingConfigError(f"no *.safetensors written to {output_dir}: was the model saved?")
    canonical, expected = canonical_names(config)
    renames: dict[str, str] = {}
    saved: set[str] = set()
    for file in files:
        tensors = load_file(file)
        fixed = {}
        for key, tensor in tensors.items():
            new = canonical(key)
            if new is None:
                raise TrainingConfigError(f"{file} holds {key}, which is no weight of a {config.model_type} model")
            if new != key:
                renames[key] = new
            fixed[new] = tensor
        saved.update(fixed)
        if any(key in renames for key in tensors):
            save_file(fixed, file, metadata={"format": "pt"})
    index = output_dir / "model.safetensors.index.json"
    if renames and index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {renames.get(k, k): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    missing = sorted(expected - saved)
    if missing:
        raise TrainingConfigError(
            f"checkpoint in {output_dir} lacks {len(missing)} weights (e.g. {', '.join(missing[:MAX_MISSING_SHOWN])})"
        )
    if renames:
        old, new = next(iter(renames.items()))
        logger.info("renamed %d saved keys to canonical names (e.g. %s -> %s)", len(renames), old, new)
    return len(renames)


def check_image_placeholders(dataset) -> None:
    """Raise before training when a row's number of images differs from the image placeholders in its messages.

    The processor refuses such a row only when its batch comes up ("Number of images provided (2) does not match
    number of image placeholders (1)"), hours into a run. A text-only row (no image, no placeholder) is fine.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = dataset.select_columns(["messages", "images"]).with_format("arrow")[:]
    rows = len(table)
    try:
        messages = table.column("messages").combine_chunks()
        turns = pc.list_flatten(messages)
        contents = pc.struct_field(turns, "content")
        parts = pc.list_flatten(contents)
        is_image = pc.fill_null(pc.equal(pc.struct_field(parts, "type"), "image"), False)
        part_row = pc.take(pc.list_parent_indices(messages), pc.list_parent_indices(contents))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as err:
        raise TrainingConfigError(
            "the dataset's messages are not lists of {role, content: [{type, text}]} turns "
            f"({' '.join(str(err).split())})"
        ) from err
    placeholders = np.bincount(pc.filter(part_row, is_image).to_numpy(zero_copy_only=False), minlength=rows)
    images = pc.fill_null(pc.list_value_length(table.column("images")), 0).to_numpy(zero_copy_only=False)
    odd = np.flatnonzero(placeholders != images)
    if len(odd):
        ids = dataset.select(odd[:MAX_MISSING_SHOWN].tolist())["id"] if "id" in dataset.column_names else None
        shown = "; ".join(
            f"row {int(i)}" + (f" ({ids[n]})" if ids else "") + f": {int(images[i])} images, "
            f"{int(placeholders[i])} <image> in its messages"
            for n, i in enumerate(odd[:MAX_MISSING_SHOWN])
        )
        more = f" and {len(odd) - MAX_MISSING_SHOWN} more" if len(odd) > MAX_MISSING_SHOWN else ""
        raise TrainingConfigError(
            f"{len(odd)} of {rows} rows have a different number of images than image placeholders "
            f"({shown}{more}): each image needs one {{type: image}} part in the messages"
        )


def _folder_chat_template(folder: Path) -> str | None:
    """The chat template a save_pretrained folder carries (file or config entry), None when it has none."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        try:
            template = json.loads((folder / name).read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            continue
        if template:
            return template
    return None


def resolve_chat_template_path(template_path: str | None, repo_dir: str | Path) -> str | None:
    """The chat template file to use: ``template_path`` as given, or, when a relative path is not found from the
    current folder, the same path under ``repo_dir`` (recipes name templates relative to the repository).

    Raises when neither exists (saying where it looked) or when the file is not a .jinja/.j2 template.
    """
    if template_path is None:
        return None
    path = Path(template_path)
    if not path.exists() and not path.is_absolute():
        in_repo = Path(repo_dir) / path
        if not in_repo.exists():
            raise TrainingConfigError(
                f"chat_template_path {template_path} does not exist relative to the current folder {Path.cwd()} "
                f"nor to the repository {repo_dir}: run from the repository root or give an absolute path"
            )
        logger.info(
            "chat_template_path %s is not in the current folder %s; using %s from the repository",
            template_path,
            Path.cwd(),
            in_repo,
        )
        path = in_repo
    elif not path.exists():
        raise TrainingConfigError(f"chat_template_path {template_path} does not exist")
    if not path.is_file() or path.suffix not in (".jinja", ".j2"):
        raise TrainingConfigError(
            f"chat_template_path {template_path} is not a .jinja file: expected a template such as "
            "recipes/chat_templates/llava-1.5.jinja"
        )
    return str(path)


def check_chat_template(template_path: str | None, model: str, *, assistant_only_loss: bool) -> None:
    """Raise before training when no chat template would be used, or one that trains nothing.

    ``template_path`` (SFTConfig.chat_template_path) wins over the template saved with a local model folder; a Hub
    model's template is checked once its processor is loaded (:func:`check_loaded_chat_template`).
    """
    if template_path is not None:
        path = Path(template_path)
        if not path.is_file() or path.suffix not in (".jinja", ".j2"):
            raise TrainingConfigError(
                f"chat_template_path {template_path} is not a .jinja file: expected a template such as "
                "recipes/chat_templates/llava-1.5.jinja (resolve it first with resolve_chat_template_path)"
            )
        template, source = path.read_text(encoding="utf-8"), f"chat_template_path {template_path}"
    elif Path(model).is_dir():
        template, source = _folder_chat_template(Path(model)), f"model folder {model}"
    else:
        return
    _check_template_text(template, source, assistant_only_loss=assistant_only_loss)


def check_loaded_chat_template(processor, template_path: str | None, *, assistant_only_loss: bool) -> None:
    """The same check on a loaded processor (a Hub model), before the model itself is loaded."""
    if template_path is None:
        source = f"model {getattr(processor, 'name_or_path', '') or 'processor'}"
        template = getattr(processor, "chat_template", None)
        _check_template_text(template, source, assistant_only_loss=assistant_only_loss)


def _check_template_text(template: str | dict | None, source: str, *, assistant_only_loss: bool) -> None:
    from trl.chat_template_utils import has_generation_markers

    if not template:
        raise TrainingConfigError(
            f"{source} has no chat template: set chat_template_path to recipes/chat_templates/llava-1.5.jinja "
            "(LLaVA-1.5's format, with the generation markers assistant_only_loss needs)"
        )
    if isinstance(template, dict):
        template = template.get("default", "")
    code = re.sub(r"\{#.*?#\}", "", template, flags=re.DOTALL)  # a comment that names the markers is no marker
    if assistant_only_loss and not has_generation_markers(code):
        raise TrainingConfigError(
            f"the chat template of {source} has no {{% generation %}} markers, so with assistant_only_loss every "
            "label would be -100 and nothing would train: use recipes/chat_templates/llava-1.5.jinja, or set "
            "assistant_only_loss false to train on the whole text"
        )


def canonical_checkpoint_callback(config):
    """A TrainerCallback that gives each saved ``checkpoint-<step>`` canonical key names, as the final save gets.

    Under ZeRO-3 every checkpoint's model.safetensors holds the doubled ``language_model.model.model.*`` keys; a
    checkpoint is often what gets evaluated or shipped when a long run stops early. Resuming reads the DeepSpeed
    state (or maps any key, see :func:`load_checkpoint_weights`), so renaming never affects it.
    """
    from transformers import TrainerCallback

    class CanonicalCheckpointKeys(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and _weight_files(folder):
                fix_saved_keys(folder, config)
            return control

    return CanonicalCheckpointKeys()
