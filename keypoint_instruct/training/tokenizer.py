"""The processor training loads, with the Llama tokenization LLaVA-1.5 was trained on.

Takes a model name or folder (and revision) and ``tokenizer_legacy``; gives the loaded processor. LLaVA-1.5 trained
with transformers 4.31's SentencePiece Llama tokenizer, which starts every piece of text with its word-start mark
``▁``, the text right after a special token included ("legacy" behaviour). The chat template writes ``<s>`` as text,
TRL tokenizes with ``add_special_tokens=False`` and ``<image>`` is an added token, so the prompt is cut into pieces at
``<s>``, ``<image>`` and every ``</s>``; a tokenizer that marks only the start of the input (a Metaspace
pre-tokenizer with ``prepend_scheme="first"``) then starts the system line with ``A`` (29909) where LLaVA had ``▁A``
(319), loses the ``▁`` (29871) LLaVA had after the image, and writes each ``USER`` after ``</s>`` as one token (11889)
where LLaVA had ``▁US ER`` (3148, 1001). The answers' tokens are the same either way; the prompt the model sees is not.

In transformers 5.25 a LLaVA folder's tokenizer loads as ``TokenizersBackend`` (``llava`` is listed among the models
whose Hub ``tokenizer_class`` is not trusted), which uses the folder's tokenizer.json as written and ignores the
``legacy`` key; a ``LlamaTokenizer`` rebuilds its pre-tokenizer from ``legacy`` (default false). Either way the
pre-tokenizer decides, so that is what :func:`mark_every_piece` sets; a checkpoint saved afterwards keeps it in its
tokenizer.json. tests/training/test_tokenizer.py checks the ids against LLaVA's with the real Llama-2 vocabulary.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def load_processor(name: str, revision: str | None = None, *, legacy: bool = True):
    """``AutoProcessor.from_pretrained(name)``; with ``legacy``, a SentencePiece-style tokenizer that marks only the
    start of its input is switched to mark every text piece (LLaVA-1.5's ids). Other tokenizers are left alone."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(name, revision=revision)
    tokenizer = getattr(processor, "tokenizer", None)
    if legacy and tokenizer is not None and mark_every_piece(tokenizer):
        logger.info("Llama tokenizer: a \u2581 before every text piece, as LLaVA-1.5 trained (tokenizer_legacy true)")
    return processor


def mark_every_piece(tokenizer) -> bool:
    """Give every text piece between special tokens SentencePiece's ``▁`` prefix, as legacy Llama tokenizers do.

    Changes a Metaspace pre-tokenizer with ``prepend_scheme="first"`` to ``"always"``; returns whether it changed
    anything (False for a tokenizer already legacy, such as Llama-2's own tokenizer.json with its Prepend
    normaliser, and for other kinds of tokenizer). A ``LlamaTokenizer`` also gets ``legacy=True``, saved with it.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    metaspace = getattr(backend, "pre_tokenizer", None)
    if not isinstance(metaspace, pre_tokenizers.Metaspace) or metaspace.prepend_scheme != "first":
        return False
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=metaspace.replacement, prepend_scheme="always", split=metaspace.split
    )
    if getattr(tokenizer, "legacy", None) is False:
        keep_legacy_on_save(tokenizer)
    return True


def keep_legacy_on_save(tokenizer) -> None:
    """Set a ``LlamaTokenizer``'s ``legacy`` to True in a way ``save_pretrained`` writes.

    Works around: transformers 5.25's ``LlamaTokenizer.__init__`` takes ``legacy`` as a named argument, so it never
    reaches ``init_kwargs``, which is what ``save_pretrained`` writes, and a ``LlamaTokenizer`` reloaded from the
    saved folder rebuilds its pre-tokenizer from the missing key (non-legacy). Can go when a ``LlamaTokenizer``
    loaded with ``legacy=True`` reloads as legacy after ``save_pretrained``.
    """
    tokenizer.legacy = True
    tokenizer.init_kwargs["legacy"] = True
