"""Answer the benchmark's questions with a model: a local transformers model or an OpenAI-compatible endpoint.

``hf``: any ``transformers`` image-text-to-text model (LLaVA-1.5, our fine-tuned checkpoints) with batched greedy
decoding, left padding, the model's own chat template and training's image preprocessing (pad to square with the
CLIP mean colour, then the model's processor). ``openai``: the image file as a base64 data URL in a chat request to
an OpenAI-compatible endpoint (vLLM, ``transformers serve``, a hosted model, Azure OpenAI), temperature 0; the
client and body follow the teacher's rules
(:func:`keypoint_instruct.llm.providers.openai.client_options`, ``chat_body``).

Both append each finished batch to the answers file at once; a rerun skips the questions already answered there.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from keypoint_instruct.bench.layout import (
    Answer,
    Bench,
    Question,
    append_jsonl,
    drop_torn_tail,
    load_answers,
    read_text,
)
from keypoint_instruct.errors import BenchmarkError, BenchmarkUnansweredError, TeacherCallError

log = logging.getLogger(__name__)

BACKENDS = ("hf", "openai")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # read as huggingface_hub reads them
CLIENT_RETRIES = 3  # the openai backend's client retries a connection, a timeout, 408, 409, 429 and 5xx this often


def default_name(model: str) -> str:
    """The name reports show: a local folder's name, or the model id as given."""
    path = Path(model)
    return path.resolve().name if path.exists() else model


def pending(bench: Bench, out: Path, name: str) -> list[Question]:
    """Questions not yet answered in ``out`` (which must hold answers of the same model, if any)."""
    drop_torn_tail(out)
    done = load_answers(out, bench, missing_ok=True)
    others = {a.model for a in done.values()} - {name}
    if others:
        raise BenchmarkError(
            f"{out} holds answers of model {sorted(others)[0]!r}, not {name!r}: write to another file or pass --name"
        )
    if done:
        log.info("resuming: %d of %d questions already answered in %s", len(done), len(bench.questions), out)
    return [q for q in bench.questions if q.question_id not in done]


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_model_source(model: str) -> None:
    """``--model`` of the hf backend names an existing folder, or a Hub model id in the local Hub cache or on the Hub.

    Anything else is one line at once (exit 2), not minutes of the Hub client's retries on a machine without network:
    a name that cannot be a Hub id (a path such as ``./run``, ``/data/run`` or ``a/b/c``) is a folder that does not
    exist; a Hub id is looked up with one request, without retries (``HF_HUB_OFFLINE=1``: in the local cache only).
    A Hub answer other than "no such model" (a gated model, a server error) is left to the loader to say.
    """
    if Path(model).expanduser().exists():
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise BenchmarkError(
            f"--model {model}: no such folder (expected a model folder, or a Hub id such as llava-hf/llava-1.5-7b-hf)"
        ) from None
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(huggingface_hub.try_to_load_from_cache(model, "config.json"), str):
        return
    missing = f"--model {model}: no such folder here, nor a model in the local Hugging Face Hub cache"
    if any(os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE") for name in _OFFLINE_ENV):
        raise BenchmarkError(f"{missing} (HF_HUB_OFFLINE is set, so the Hub is not asked)")
    try:
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(model, "config.json"))
    except GatedRepoError:
        return  # the loader says what access it needs
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise BenchmarkError(f"{missing} or on the Hub (looked up there as a model id)") from None
    except HfHubHTTPError:
        return  # the Hub answered something else: the loader retries and says
    except Exception as err:  # noqa: BLE001 - no answer at all (DNS, refused, timeout), whatever the HTTP client
        said = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise BenchmarkError(
            f"{missing}; looked up on the Hub as a model id, the Hub could not be reached ({said}): give an existing "
            "folder, or set HF_HUB_OFFLINE=1 on a machine without network"
        ) from None


def hf_inputs(processor, questions: list[str], images: list):
    """The model inputs of a batch of (question, padded image): the chat template's generation prompt, tokenized
    the way training tokenized it.

    A template that writes the BOS itself (LLaVA-1.5's, as trained) is tokenized without the tokenizer's own
    special tokens, as TRL does in training; otherwise a Llama tokenizer would add a second ``<s>``.
    """
    conversations = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions
    ]
    prompts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
    bos = processor.tokenizer.bos_token
    has_bos = bool(bos) and all(prompt.startswith(bos) for prompt in prompts)
    return processor(images=images, text=prompts, padding=True, return_tensors="pt", add_special_tokens=not has_bos)


def answer_hf(
    bench: Bench,
    out: Path,
    model_path: str,
    *,
    name: str,
    batch_size: int = 8,
    max_new_tokens: int = 512,
    chat_template: Path | None = None,
) -> int:
    """Answer the pending questions with a local transformers model; return how many were answered now.

    ``chat_template`` (a .jinja file) replaces the model's own template, e.g. LLaVA-1.5's for the base llava-hf model.
    """
    template = None
    if chat_template is not None:
        template = read_text(Path(chat_template), "a .jinja chat template for --chat-template")
    todo = pending(bench, out, name)
    if not todo:
        return 0
    check_model_source(model_path)
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from keypoint_instruct.training.images import pad_to_square
    from keypoint_instruct.training.tokenizer import load_processor

    try:
        # the prompt ids LLaVA-1.5 trained on (a ▁ before every text piece), as training uses: base and
        # fine-tuned models are asked alike
        processor = load_processor(model_path)
        model = AutoModelForImageTextToText.from_pretrained(
            model_path, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32
        )
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchmarkError(f"cannot load model {model_path!r} as image-text-to-text: {first}") from None
    if template is not None:
        processor.chat_template = template
    if getattr(processor, "chat_template", None) is None:
        raise BenchmarkError(
            f"model {model_path!r} has no chat template: save one with its processor, or pass --chat-template "
            "(recipes/chat_templates/llava-1.5.jinja for LLaVA-1.5)"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    done = 0
    for batch in _batches(todo, batch_size):
        images = []
        for q in batch:
            with Image.open(bench.image_path(q)) as image:
                images.append(pad_to_square(image.convert("RGB")))
        inputs = hf_inputs(processor, [q.text for q in batch], images)
        inputs = inputs.to(device, dtype=model.dtype)  # ids move, pixel values also take the model dtype
        with torch.inference_mode():
            output = model.generate(
                **inputs, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
            )
        texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        append_jsonl(
            out,
            [
                Answer(q.question_id, name, t.strip(), "hf", model_path, q.text)
                for q, t in zip(batch, texts, strict=True)
            ],
        )
        done += len(batch)
        log.info("answered %d/%d", done, len(todo))
    return done


def image_data_url(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def openai_client(base_url: str | None, api_key: str):
    """The client for ``base_url`` as the teacher builds its own (a query such as Azure's ``api-version`` sent with
    every request, Azure's ``api-key`` header), and the ``extra_headers`` every request must send."""
    import openai

    from keypoint_instruct.llm.providers.openai import client_options, request_headers

    client = openai.OpenAI(
        **client_options(base_url, api_key), api_key=api_key, max_retries=CLIENT_RETRIES, timeout=600
    )
    return client, request_headers(base_url)


def answer_openai(
    bench: Bench,
    out: Path,
    model: str,
    *,
    name: str,
    base_url: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 512,
) -> int:
    """Answer the pending questions through an OpenAI-compatible endpoint, ``batch_size`` requests at a time."""
    todo = pending(bench, out, name)
    if not todo:
        return 0
    import openai

    from keypoint_instruct.llm.providers.openai import answer_text, call_error, resolve_api_key
    from keypoint_instruct.llm.request import chat_body

    client, headers = openai_client(base_url, resolve_api_key(base_url))
    # what the client retries itself (CLIENT_RETRIES times): connections, timeouts, 408, 409, 429 and 5xx
    client_retried = (openai.APIConnectionError, openai.APIStatusError)
    where = base_url or "api.openai.com"

    def unanswered(question: Question, failure: TeacherCallError, *, retried: bool = False) -> BenchmarkError:
        """A failure the endpoint may get over (down, failing, a reply that is no answer) stops the run short (exit
        1); a refusal every question would get (the key, the model, a parameter) is bad input (exit 2)."""
        if not failure.retryable:
            return BenchmarkError(
                f"endpoint {where} refused the request for question {question.question_id}: {failure.reason}"
            )
        after = f" after {CLIENT_RETRIES + 1} attempts" if retried else ""
        return BenchmarkUnansweredError(
            f"endpoint {where} gave no usable answer to question {question.question_id}{after} (last: "
            f"{failure.reason}); answers already in {out} are kept: check --base-url and that the server is up, "
            "then run the same command again to ask the rest"
        )

    def ask(question: Question) -> str:
        content = [
            {"type": "image_url", "image_url": {"url": image_data_url(bench.image_path(question))}},
            {"type": "text", "text": question.text},
        ]
        body = chat_body(model, [{"role": "user", "content": content}], temperature=0.0, max_tokens=max_new_tokens)
        try:
            response = client.chat.completions.create(**body, extra_headers=headers)
        except (openai.APIError, ValueError) as err:  # ValueError: a reply not JSON
            raise unanswered(question, call_error(err, model), retried=isinstance(err, client_retried)) from None
        try:
            message = response.choices[0].message
        except (IndexError, AttributeError, TypeError):
            raise unanswered(question, TeacherCallError("response without choices", retryable=True)) from None
        text, _ = answer_text(message.content, getattr(message, "refusal", None), None)
        return text.strip()

    def attempt(question: Question) -> str | BenchmarkError:
        try:
            return ask(question)
        except BenchmarkError as err:
            return err

    done = 0
    with ThreadPoolExecutor(max_workers=batch_size) as pool:
        for batch in _batches(todo, batch_size):
            results = list(pool.map(attempt, batch))
            answered = [(q, r) for q, r in zip(batch, results, strict=True) if isinstance(r, str)]
            # keep what the endpoint did answer (it may have been paid for) before reporting a refusal
            append_jsonl(out, [Answer(q.question_id, name, t, "openai", model, q.text) for q, t in answered])
            done += len(answered)
            failed = next((r for r in results if isinstance(r, BenchmarkError)), None)
            if failed is not None:
                raise failed
            log.info("answered %d/%d", done, len(todo))
    return done
