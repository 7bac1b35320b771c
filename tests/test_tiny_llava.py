"""The tiny LLaVA: built by the real script, consistent configs, the chat template's loss mask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.tiny_llava import IMAGE_TOKEN, SPECIAL_TOKENS, load_chat_template

REPO = Path(__file__).resolve().parent.parent

CONVERSATION = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is the person doing?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "The person is standing."}]},
    {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Ready to move."}]},
]


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


def test_chat_template_trains_answers_and_their_eos_only(tiny_llava_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    out = processor.apply_chat_template(
        [CONVERSATION],
        images=[[Image.new("RGB", (56, 56))]],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        return_tensors="pt",
        processor_kwargs={"add_special_tokens": False},
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    tokenizer = processor.tokenizer
    assert tokenizer.decode(ids[mask]) == " The person is standing.</s> Ready to move.</s>"
    text = tokenizer.decode(ids)
    assert text.startswith("<s>A chat between a curious human")
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
