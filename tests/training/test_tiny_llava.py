"""The tiny LLaVA: built by the real script, consistent configs, the chat template's loss mask."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.tiny_llava import IMAGE_TOKEN, SPECIAL_TOKENS, load_chat_template
from tests.paths import REPO

CONVERSATION = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is the person doing?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "The person is standing."}]},
    {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Ready to move."}]},
]


def _tokens_and_assistant_mask(processor):
    """CONVERSATION with one image, tokenized as TRL does (no extra special tokens): ids and the trained-token mask."""
    out = processor.apply_chat_template(
        [CONVERSATION],
        images=[[Image.new("RGB", (56, 56))]],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        return_tensors="pt",
        processor_kwargs={"add_special_tokens": False},
    )
    return out["input_ids"][0], out["assistant_masks"][0].bool()


def test_script_builds_a_model_that_loads(tmp_path):
    out = tmp_path / "tiny"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tiny_llava.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)  # (DeepSpeed prints its accelerator to stdout)
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (out / name).is_file(), name
    assert (out / "chat_template.jinja").read_text() == load_chat_template()


def test_script_says_in_one_line_when_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker, blocker / "tiny"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_tiny_llava.py"), str(out)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("make_tiny_llava: error:")]
        assert len(errors) == 1 and str(out) in errors[0], proc.stderr


def test_processor_and_model_agree_on_image_tokens(tiny_llava_dir):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    tokenizer = processor.tokenizer
    assert set(SPECIAL_TOKENS) <= set(tokenizer.get_vocab())
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    inputs = processor(images=[Image.new("RGB", (80, 60))], text=f"{IMAGE_TOKEN}\nhello", return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"])
    features = features.pooler_output if hasattr(features, "pooler_output") else features
    n_features = sum(f.shape[0] for f in features) if isinstance(features, list | tuple) else features.shape[-2]
    assert n_image_tokens == n_features == 16
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape


# LLaVA-1.5's fine-tuning (`--version v1`) wrote conversations with its "vicuna_v1" format: this system line, then
# "ROLE: text" joined by " " after a question and "</s>" after an answer; its tokenizer put <s> in front.
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def _vicuna_v1_text(messages: list[dict], generation_prompt: bool = False) -> str:
    text = "<s>" + VICUNA_V1_SYSTEM + " "
    for index, message in enumerate(messages):
        role = "USER" if message["role"] == "user" else "ASSISTANT"
        body = "".join("<image>\n" if part["type"] == "image" else part["text"] for part in message["content"])
        text += f"{role}: {body}" + (" " if index % 2 == 0 else "</s>")
    return text + ("ASSISTANT:" if generation_prompt else "")


def test_chat_template_renders_llavas_own_training_text(tiny_llava_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    assert processor.apply_chat_template(CONVERSATION) == _vicuna_v1_text(CONVERSATION)
    assert processor.apply_chat_template(CONVERSATION[:3], add_generation_prompt=True) == _vicuna_v1_text(
        CONVERSATION[:3], generation_prompt=True
    )
    assert _vicuna_v1_text(CONVERSATION) == (
        "<s>" + VICUNA_V1_SYSTEM + " USER: <image>\nWhat is the person doing? ASSISTANT: The person is standing.</s>"
        "USER: Why? ASSISTANT: Ready to move.</s>"
    )


def _llama_style_tokenizer():
    """transformers' own LlamaTokenizer (SentencePiece-style: Metaspace, byte fallback), as llava-hf/llava-1.5-7b-hf
    loads it, over a small vocabulary trained here: pieces start with the word's space, never end with one."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    from keypoint_instruct.training.tiny_llava import _CORPUS

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    alphabet = [f"<0x{byte:02X}>" for byte in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=alphabet)
    backend.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = LlamaTokenizer(vocab=model["vocab"], merges=merges, extra_special_tokens={"image_token": IMAGE_TOKEN})
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return tokenizer


def test_answers_and_eos_are_trained_under_a_llama_style_tokenizer(tiny_llava_dir):
    """The 7B's tokenizer glues the space before a word to it ("\u2581The"): the mask must still start at the answer's
    first token and end with its </s>, and take nothing of "ASSISTANT:"."""
    from transformers import AutoProcessor, LlavaProcessor

    stock = AutoProcessor.from_pretrained(tiny_llava_dir)
    tokenizer = _llama_style_tokenizer()
    processor = LlavaProcessor(
        image_processor=stock.image_processor,
        tokenizer=tokenizer,
        patch_size=stock.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=load_chat_template(),
        image_token=IMAGE_TOKEN,
    )
    ids, mask = _tokens_and_assistant_mask(processor)
    assert tokenizer.convert_ids_to_tokens(ids[:1].tolist()) == ["<s>"]  # the template's <s>, not doubled
    trained = tokenizer.convert_ids_to_tokens(ids[mask].tolist())
    answers = [m["content"][0]["text"] for m in CONVERSATION if m["role"] == "assistant"]
    assert trained == [*tokenizer.tokenize(answers[0]), "</s>", *tokenizer.tokenize(answers[1]), "</s>"]
    assert trained[0] == "\u2581The"
    assert not mask[ids == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)].any()
    before = [tokenizer.decode(ids[: int(start)]) for start in (mask.int().diff() == 1).nonzero()[:, 0] + 1]
    assert all(text.endswith("ASSISTANT:") for text in before) and len(before) == 2


def test_chat_template_trains_answers_and_their_eos_only(tiny_llava_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    ids, mask = _tokens_and_assistant_mask(processor)
    tokenizer = processor.tokenizer
    assert tokenizer.decode(ids[mask]) == " The person is standing.</s> Ready to move.</s>"
    text = tokenizer.decode(ids)
    assert text.startswith("<s>A chat between a curious user")
    assert "USER: " + IMAGE_TOKEN in text and text.endswith("ASSISTANT: Ready to move.</s>")


def test_inference_prompt_is_a_prefix_of_the_training_text(tiny_llava_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    prompt = processor.apply_chat_template(CONVERSATION[:1], add_generation_prompt=True)
    full = processor.apply_chat_template(CONVERSATION[:2])
    assert prompt.endswith("ASSISTANT:") and full.startswith(prompt)
    custom = [{"role": "system", "content": "Be brief."}, *CONVERSATION[:1]]
    assert processor.apply_chat_template(custom, add_generation_prompt=True).startswith("<s>Be brief. USER:")


def test_missing_chat_template_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingConfigError, match="chat template not found"):
        load_chat_template(tmp_path / "nope.jinja")
