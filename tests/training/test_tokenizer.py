"""keypoint_instruct/training/tokenizer.py with the real Llama-2 vocabulary: the ids training feeds the model and
the tokens it trains are LLaVA-1.5's, for a model folder whose tokenizer says legacy true, false or nothing.

The expected ids come from LLaVA's own procedure, written out below (its ``conv_vicuna_v1`` prompt,
``tokenizer_image_token`` and ``preprocess_v1`` masking over a SentencePiece-like encoder), for both of its tokenizer
modes: ``legacy`` (what LLaVA-1.5 was trained with: transformers 4.31, where every text piece starts with ``▁``) and
non-legacy (later transformers: no ``▁`` after a special token, and LLaVA's one-token correction of each round). The
project's side goes through the real path: the chat template of recipes/chat_templates/, the processor as
train_sft.py loads it, and the SFTTrainer's own collator. The vocabulary comes from tests/llama_vocab.py (fetched
once; skipped with the reason when neither cached nor reachable).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.llama_vocab import VocabularyUnavailable, llama_tokenizer_json
from train_sft import build_trainer, parse_args

REPO = Path(__file__).resolve().parents[2]
CPU_RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_cpu.yaml"
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)  # LLaVA's conv_vicuna_v1, which `--version v1` (LLaVA-1.5's fine-tuning) selects
TURNS = [("What is the person doing?", "The person is standing."), ("Why?", "Ready to move.")]
IMAGE = -200  # LLaVA's IMAGE_TOKEN_INDEX
BOS, EOS = 1, 2
# LLaVA-1.5's input_ids for TURNS in legacy mode, written out: a check on the re-implementation below.
LLAVA_LEGACY_IDS = [
    1, 319, 13563, 1546, 263, 12758, 1404, 322, 385, 23116, 21082, 20255, 29889, 450, 20255, 4076, 8444, 29892,
    13173, 29892, 322, 1248, 568, 6089, 304, 278, 1404, 29915, 29879, 5155, 29889, 3148, 1001, 29901, 29871, IMAGE,
    29871, 13, 5618, 338, 278, 2022, 2599, 29973, 319, 1799, 9047, 13566, 29901, 450, 2022, 338, 13407, 29889, 2,
    3148, 1001, 29901, 3750, 29973, 319, 1799, 9047, 13566, 29901, 830, 3714, 304, 4337, 29889, 2,
]  # fmt: skip
A, SPACE_A, SPACE, USER, SPACE_US_ER = 29909, 319, 29871, 11889, [3148, 1001]


@pytest.fixture(scope="module")
def llama_json() -> Path:
    try:
        return llama_tokenizer_json()
    except VocabularyUnavailable as err:
        pytest.skip(str(err))


# ---- LLaVA-1.5's side, re-implemented from its train.py / mm_utils.py / conversation.py ----


def _slow_encoder(llama_json: Path, legacy: bool):
    """LLaVA's ``tokenizer(text).input_ids`` with the slow Llama tokenizer: BOS, then the text cut at special tokens,
    each piece encoded by SentencePiece with its ``▁`` dummy prefix (legacy), or only the first piece (non-legacy)."""
    from tokenizers import Tokenizer, normalizers

    prefixed = Tokenizer.from_file(str(llama_json))
    bare = Tokenizer.from_file(str(llama_json))
    bare.normalizer = normalizers.Replace(" ", "▁")
    specials = {"<s>": BOS, "</s>": EOS}

    def encode(text: str) -> list[int]:
        ids = [BOS]
        for index, piece in enumerate(part for part in re.split(r"(<s>|</s>)", text) if part):
            if piece in specials:
                ids.append(specials[piece])
            else:
                ids += (prefixed if legacy or index == 0 else bare).encode(piece, add_special_tokens=False).ids
        return ids

    return encode


def llava_sample(llama_json: Path, legacy: bool) -> tuple[list[int], list[int]]:
    """(input_ids, labels) LLaVA-1.5's ``preprocess_v1`` makes of TURNS (``<image>`` kept as -200)."""
    encode = _slow_encoder(llama_json, legacy)

    def with_image(text: str) -> list[int]:  # tokenizer_image_token: each chunk on its own, BOS kept once
        chunks = [encode(chunk) for chunk in text.split("<image>")]
        ids = chunks[0]
        for chunk in chunks[1:]:
            ids += [IMAGE, *chunk[1:]]
        return ids

    prompt = SYSTEM + " "
    for index, (question, answer) in enumerate(TURNS):
        question = f"<image>\n{question}" if index == 0 else question
        prompt += f"USER: {question} ASSISTANT: {answer}</s>"
    input_ids = with_image(prompt)
    labels, cursor = list(input_ids), 1
    labels[0] = -100
    for index, round_text in enumerate(prompt.split("</s>")):
        if not round_text:
            break
        instruction = round_text.split(" ASSISTANT: ")[0] + " ASSISTANT: "
        round_len, instruction_len = len(with_image(round_text)), len(with_image(instruction)) - 2
        if index and not legacy:  # LLaVA's correction for tokenizers >= 0.14 without legacy
            round_len, instruction_len = round_len - 1, instruction_len - 1
        labels[cursor : cursor + instruction_len] = [-100] * instruction_len
        cursor += round_len
    assert cursor == len(input_ids), "LLaVA would mask this whole sample (tokenization mismatch)"
    return input_ids, labels


def test_the_llava_reference_gives_llava_15s_ids(llama_json):
    legacy_ids, legacy_labels = llava_sample(llama_json, legacy=True)
    assert legacy_ids == LLAVA_LEGACY_IDS
    ids, labels = llava_sample(llama_json, legacy=False)
    assert ids == LLAVA_LEGACY_IDS[:55] + [USER] + LLAVA_LEGACY_IDS[57:]  # </s>USER: one token without legacy
    for sample_ids, sample_labels in ((legacy_ids, legacy_labels), (ids, labels)):
        trained = [i for i, label in zip(sample_ids, sample_labels, strict=True) if label != -100]
        assert trained == [450, 2022, 338, 13407, 29889, EOS, 830, 3714, 304, 4337, 29889, EOS]  # the answers


# ---- the project's side: chat template, processor, TRL's collator ----


def _llama_tokenizer(llama_json: Path, layout: str, work: Path):
    """Llama-2's tokenizer with llava-hf's added tokens (<image> 32000, <pad> 32001), its tokenizer.json in one of
    two layouts: ``sentencepiece`` (Llama-2's own file: a normaliser that prepends ``▁`` to every text piece) or
    ``metaspace-first`` (what a non-legacy LlamaTokenizer writes: ``▁`` only at the start of the input)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    names = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    if layout == "sentencepiece":
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(llama_json), **names)
    else:
        work.mkdir(parents=True)
        (work / "tokenizer.json").write_bytes(llama_json.read_bytes())
        (work / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", **names}))
        tokenizer = AutoTokenizer.from_pretrained(work)
        assert tokenizer.legacy is False  # transformers 5's default when the config has no legacy key
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    assert tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    return tokenizer


def _model_folder(llama_json: Path, out: Path, layout: str) -> Path:
    """A tiny LLaVA with the real Llama-2 tokenizer; its tokenizer_config says LlamaTokenizer, legacy false (as
    llava-hf's), which transformers 5.25 ignores for a LLaVA folder: the tokenizer.json's layout decides."""
    from keypoint_instruct.training.tiny_llava import build_tiny_llava

    build_tiny_llava(out, tokenizer=_llama_tokenizer(llama_json, layout, out.parent / f"{out.name}-tokenizer"))
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="LlamaTokenizer", legacy=False)
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def _trained_sample(model_dir: Path, sft_dataset, out: Path, tokenizer_legacy: bool) -> tuple[list[int], list[int]]:
    """What the SFTTrainer of train_sft.py feeds the model for TURNS, image tokens folded back into one -200."""
    from PIL import Image

    dataset_dir, coco_root = sft_dataset
    argv = ["--config", str(CPU_RECIPE), "--model_name_or_path", str(model_dir), "--dataset_name", str(dataset_dir)]
    argv += ["--coco_root", str(coco_root), "--output_dir", str(out), "--tokenizer_legacy", str(tokenizer_legacy)]
    trainer = build_trainer(*parse_args(argv))
    messages = []
    for index, (question, answer) in enumerate(TURNS):
        image = [{"type": "image"}] if index == 0 else []
        messages.append({"role": "user", "content": [*image, {"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    batch = trainer.data_collator([{"messages": messages, "images": [Image.new("RGB", (56, 56), (9, 9, 9))]}])
    image_id = trainer.model.config.image_token_id
    ids, labels = [], []
    for token, label in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist(), strict=True):
        if token == image_id:
            if ids and ids[-1] == IMAGE:
                continue
            token = IMAGE
        ids.append(token)
        labels.append(label)
    return ids, labels


LAYOUTS = ["sentencepiece", "metaspace-first"]


@pytest.fixture(scope="module", params=LAYOUTS)
def model_dir(request, llama_json, tmp_path_factory) -> tuple[Path, str]:
    return _model_folder(llama_json, tmp_path_factory.mktemp("llama") / "model", request.param), request.param


def test_training_sees_and_trains_llava_15s_ids_whatever_the_folder_holds(
    llama_json, model_dir, sft_dataset, tmp_path
):
    """tokenizer_legacy true (the recipes'): the ids LLaVA-1.5 was trained on, labels on the same positions."""
    folder, _ = model_dir
    assert _trained_sample(folder, sft_dataset, tmp_path, tokenizer_legacy=True) == llava_sample(llama_json, True)


def test_without_legacy_only_the_prompt_differs_from_llava_where_the_tokenizer_cannot_follow(
    llama_json, model_dir, sft_dataset, tmp_path
):
    """tokenizer_legacy false: a folder whose tokenizer is legacy still gives LLaVA-1.5's ids; a non-legacy one gives
    the ids of LLaVA's non-legacy mode but for two prompt tokens (``A`` for ``▁A``, no ``▁`` after the image): the
    template's ``<s>`` is text and the image an added token. The trained tokens are the same in every case."""
    folder, layout = model_dir
    ids, labels = _trained_sample(folder, sft_dataset, tmp_path, tokenizer_legacy=False)
    legacy = layout == "sentencepiece"
    llava_ids, llava_labels = llava_sample(llama_json, legacy=legacy)
    if legacy:
        assert (ids, labels) == (llava_ids, llava_labels)
    else:
        after_image = llava_ids.index(IMAGE) + 1
        assert llava_ids[1] == SPACE_A and llava_ids[after_image] == SPACE
        assert ids == [BOS, A, *llava_ids[2:after_image], *llava_ids[after_image + 1 :]]
        assert ids[ids.index(EOS) + 1] == USER  # no ▁US ER after </s>, as in LLaVA's non-legacy mode
    trained = [token for token, label in zip(ids, labels, strict=True) if label != -100]
    assert trained == [t for t, label in zip(llava_ids, llava_labels, strict=True) if label != -100]


def test_a_checkpoint_keeps_the_tokenization_it_was_trained_with(llama_json, tmp_path):
    from transformers import AutoProcessor, AutoTokenizer

    from keypoint_instruct.training.tokenizer import load_processor, mark_every_piece

    folder = _model_folder(llama_json, tmp_path / "model", "metaspace-first")
    assert load_processor(str(folder), legacy=False).tokenizer("<s>A", add_special_tokens=False).input_ids == [1, A]
    load_processor(str(folder), legacy=True).save_pretrained(tmp_path / "saved")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "saved").tokenizer
    assert reloaded("<s>A chat", add_special_tokens=False).input_ids == [BOS, SPACE_A, 13563]
    # a LlamaTokenizer (not a LLaVA folder) rebuilds its pre-tokenizer from `legacy`, which must survive the save
    tokenizer = _llama_tokenizer(llama_json, "metaspace-first", tmp_path / "llama")
    assert mark_every_piece(tokenizer) and not mark_every_piece(tokenizer)
    tokenizer.save_pretrained(tmp_path / "llama-saved")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "llama-saved")
    assert type(reloaded).__name__ == "LlamaTokenizer" and reloaded.legacy is True
    ids = reloaded("<s>A chat</s>USER", add_special_tokens=False).input_ids
    assert ids == [BOS, SPACE_A, 13563, EOS, *SPACE_US_ER]
