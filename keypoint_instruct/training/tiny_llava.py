"""A tiny random LLaVA-1.5 built from real configs, for tests and the demo (seconds, offline).

Same classes as ``llava-hf/llava-1.5-7b-hf`` (``LlavaForConditionalGeneration`` over a Llama text model and a CLIP
vision tower, ``LlavaProcessor``), only small: a byte-level BPE tokenizer trained in-process, a 56x56 CLIP tower with
14-pixel patches (16 patch features plus CLS, CLS dropped by the "default" feature strategy, so every ``<image>``
expands to 16 tokens) and the project's LLaVA-1.5 chat template from ``recipes/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from keypoint_instruct.errors import TrainingConfigError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT_TEMPLATE_PATH = REPO_ROOT / "recipes" / "chat_templates" / "llava-1.5.jinja"

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)
IMAGE_SIZE = 56
PATCH_SIZE = 14
VOCAB_SIZE = 512

# Enough text for a byte-level BPE to learn the words the fixture data and the chat template use.
_CORPUS = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: ASSISTANT: "
    "What is the person doing? The person is standing with the left arm raised and the right knee bent. "
    "Describe the poses and actions of the people in the image. A man swings a tennis racket while a woman "
    "watches; a skier leans forward with both elbows bent about ninety degrees. Why is the player crouching? "
    "The player crouches to lower the centre of mass, ready to move left or right. nose eye ear shoulder elbow "
    "wrist hip knee ankle left right person people skis surfboard frisbee ball bench dog horse street field "
)


def load_chat_template(path: Path | str = CHAT_TEMPLATE_PATH) -> str:
    """The Jinja text of the LLaVA-1.5 chat template shipped in ``recipes/chat_templates/``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingConfigError(f"chat template not found: {path} (expected a .jinja file)")
    return path.read_text(encoding="utf-8")


def build_tokenizer(vocab_size: int = VOCAB_SIZE, corpus: Sequence[str] = (_CORPUS,)):
    """A byte-level BPE tokenizer (Llama's special tokens plus ``<image>``), trained in-process on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*corpus] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=4096,
    )


def build_tiny_llava(
    out_dir: Path | str, *, seed: int = 0, chat_template_path: Path | str = CHAT_TEMPLATE_PATH, tokenizer=None
):
    """Build a tiny random LLaVA with its processor, save both under ``out_dir`` and return the path.

    ``tokenizer``: use this one (it must know ``<image>``, ``<s>``, ``</s>`` and a pad token) instead of training a
    small byte-level BPE, e.g. the real Llama-2 vocabulary of tests/training/test_tokenizer.py.
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out_dir = Path(out_dir)
    chat_template = load_chat_template(chat_template_path)
    tokenizer = build_tokenizer() if tokenizer is None else tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    config = LlavaConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=chat_template,
        image_token=IMAGE_TOKEN,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    logger.info("tiny LLaVA (%d parameters) saved to %s", sum(p.numel() for p in model.parameters()), out_dir)
    return out_dir


# llava-hf/llava-1.5-7b-hf's widths and depths (Vicuna-7B, CLIP ViT-L/14-336), and the tiny ones of the device
# script's CPU rehearsal (REHEARSE=1): same classes, image size, patch and feature layer, so the same 576 image tokens.
SIZES = {
    "7b": {
        "text": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32},
        "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
        "projection_dim": 768,
    },
    "tiny": {
        "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
        "projection_dim": 32,
    },
}
LLAVA_15_IMAGE_SIZE = 336
LLAVA_15_IMAGE_TOKENS = (LLAVA_15_IMAGE_SIZE // PATCH_SIZE) ** 2  # 576: CLIP's CLS feature is dropped


def llava_15_7b_config(tokenizer, size: str = "7b"):
    """``llava-hf/llava-1.5-7b-hf``'s architecture (Vicuna-7B + CLIP ViT-L/14-336, 576 image tokens), written out
    so that no download is needed; ids of the special tokens follow ``tokenizer``. ``size="tiny"`` keeps everything
    but the widths and depths (the CPU rehearsal of the device script)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if size not in SIZES:
        raise TrainingConfigError(f"LLaVA-1.5 skeleton size {size!r}: expected one of {sorted(SIZES)}")
    widths = SIZES[size]
    text = widths["text"]
    text_config = LlamaConfig(
        vocab_size=32064,
        **text,
        num_key_value_heads=text["num_attention_heads"],
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = CLIPVisionConfig(
        **widths["vision"],
        image_size=LLAVA_15_IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=widths["projection_dim"],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return LlavaConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        image_seq_length=LLAVA_15_IMAGE_TOKENS,
    )


def write_llava_7b_skeleton(
    out_dir: Path | str, corpus: Sequence[str], vocab_size: int = 8000, size: str = "7b"
) -> Path:
    """Config + processor of LLaVA-1.5-7B, no weights: for building a random 7B on a GPU (device benchmark).

    The tokenizer is a byte-level BPE trained on ``corpus`` (the dataset's own text), so sequence lengths are close
    to what Llama's tokenizer gives; the model keeps Llama's 32,064-entry embedding. ``size="tiny"``: the same
    skeleton with tiny widths and depths (see ``SIZES``).
    """
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size, corpus)
    config = llava_15_7b_config(tokenizer, size)
    side = LLAVA_15_IMAGE_SIZE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=load_chat_template(),
        image_token=IMAGE_TOKEN,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
