"""Checkpoints: which one to resume from, loading its weights, and canonical key names in every save.

Takes ``resume_from_checkpoint`` and ``output_dir``, a model and a checkpoint folder, or a saved folder and its
config; gives the checkpoint folder to resume from, the weights loaded under their saved names, and safetensors files
whose keys are the ones a fresh ``save_pretrained`` writes (a ZeRO-3 save doubles ``model.``). The transformers
internals that map key names live in :mod:`keypoint_instruct.training.upstream`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.images import MAX_MISSING_SHOWN
from keypoint_instruct.training.upstream import canonical_names, module_key_map

logger = logging.getLogger(__name__)


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
