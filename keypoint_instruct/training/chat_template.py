"""The chat template training uses: found (as given, or in the repository), and checked to train something.

Takes ``SFTConfig.chat_template_path`` (or a local model folder's saved template, or a loaded processor's) and
``assistant_only_loss``; gives the template file to use, or a :class:`TrainingConfigError` before training when no
template would be used or its missing ``{% generation %}`` markers would label every token -100.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from keypoint_instruct.errors import TrainingConfigError

logger = logging.getLogger(__name__)

LLAVA_TEMPLATE = "recipes/chat_templates/llava-1.5.jinja"  # LLaVA-1.5's format, with generation markers


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
            f"chat_template_path {template_path} is not a .jinja file: expected a template such as {LLAVA_TEMPLATE}"
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
                f"{LLAVA_TEMPLATE} (resolve it first with resolve_chat_template_path)"
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


def _check_template_text(template: str | dict | None, source: str, *, assistant_only_loss: bool) -> None:
    from trl.chat_template_utils import has_generation_markers

    if not template:
        raise TrainingConfigError(
            f"{source} has no chat template: set chat_template_path to {LLAVA_TEMPLATE} "
            "(LLaVA-1.5's format, with the generation markers assistant_only_loss needs)"
        )
    if isinstance(template, dict):
        template = template.get("default", "")
    code = re.sub(r"\{#.*?#\}", "", template, flags=re.DOTALL)  # a comment that names the markers is no marker
    if assistant_only_loss and not has_generation_markers(code):
        raise TrainingConfigError(
            f"the chat template of {source} has no {{% generation %}} markers, so with assistant_only_loss every "
            f"label would be -100 and nothing would train: use {LLAVA_TEMPLATE}, or set "
            "assistant_only_loss false to train on the whole text"
        )
