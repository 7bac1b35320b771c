"""The real Llama-2 / Vicuna tokenizer for tests, built from the npm package ``llama-tokenizer-js`` (fetched once).

LLaVA-1.5-7B's language model is Vicuna-7B v1.5, which uses Llama-2's SentencePiece vocabulary (32,000 pieces; LLaMA-1
has the same one). ``llama-tokenizer-js`` 1.2.2 embeds that vocabulary and its 61,249 BPE merges in
``llama-tokenizer.js`` as two base64 strings: the pieces joined by newlines (line number = id), and the merges in
rank order as pairs of little-endian uint16 ids. This module turns them into a ``tokenizers`` tokenizer.json laid out
like Llama-2's own (BPE with byte fallback; the normaliser prepends SentencePiece's ``▁`` and turns spaces into it;
``<s> $A`` post-processing), and checks it against ids Llama's tokenizer is documented to give.

Not committed to the repository, on purpose: the package's code is MIT (belladoreai), but the vocabulary it carries is
Meta's Llama tokenizer, under the Llama 2 Community License, which this Apache-2.0 repository does not ship (and the
built file is 1.4 MB). So the tests fetch the package once (this pinned version, checked against the npm registry's
sha512) into a cache, and are skipped with the reason when there is neither a cached copy nor a network:

    python tests/llama_vocab.py       # fetch and build once: <repo>/.cache/llama-tokenizer-js/tokenizer.json

``KI_LLAMA_VOCAB_CACHE`` moves the cache; ``LLAMA_TOKENIZER_JS_TGZ=/path/llama-tokenizer-js-1.2.2.tgz`` uses a tarball
you already have (``npm pack llama-tokenizer-js@1.2.2`` makes one) instead of fetching.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import sys
import tarfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE, VERSION = "llama-tokenizer-js", "1.2.2"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
URL = f"https://registry.npmjs.org/{PACKAGE}/-/{TARBALL}"
# `npm view llama-tokenizer-js@1.2.2 dist.integrity`
SHA512 = "Wmth393dc3odWU3IzARJ3r2oIfWgw9GdJ5Gm+hGhfECNO18UHLRqEFSf511jn4E9KcQGzuuKw4Wl08pHAemLAw=="
PIECES, MERGES = 32000, 61249
SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2
# Ids Llama's tokenizer gives (transformers' LlamaTokenizer docstring; the package's own tests): a built file that
# differs is not Llama's.
KNOWN = {"Hello world": [1, 15043, 3186], "Hello this is a test": [1, 15043, 445, 338, 263, 1243]}
FETCH_TIMEOUT_S = 15


class VocabularyUnavailable(RuntimeError):
    """Neither a cached copy nor the npm registry: the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("KI_LLAMA_VOCAB_CACHE") or REPO / ".cache" / PACKAGE)


def _integrity(data: bytes) -> str:
    return base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_tarball(cache: Path) -> Path:
    """The package tarball in ``cache``: already there, copied from ``LLAMA_TOKENIZER_JS_TGZ``, or downloaded."""
    target = cache / TARBALL
    if target.is_file() and _integrity(target.read_bytes()) == SHA512:
        return target
    local = os.environ.get("LLAMA_TOKENIZER_JS_TGZ")
    if local:
        data, source = Path(local).read_bytes(), local
    else:
        try:
            with urllib.request.urlopen(URL, timeout=FETCH_TIMEOUT_S) as response:
                data, source = response.read(), URL
        except OSError as err:
            raise VocabularyUnavailable(
                f"the real Llama-2 vocabulary is not cached in {cache} and {URL} cannot be fetched ({err}); run "
                "`python tests/llama_vocab.py` once with network, or set LLAMA_TOKENIZER_JS_TGZ to the tarball"
            ) from None
    if _integrity(data) != SHA512:
        raise VocabularyUnavailable(f"{source} is not {PACKAGE} {VERSION}: its sha512 differs from the registry's")
    cache.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def read_package(tarball: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The 32,000 pieces (in id order) and the 61,249 merges (in rank order) that the package embeds."""
    with tarfile.open(tarball) as archive:
        source = archive.extractfile("package/llama-tokenizer.js").read().decode("utf-8")

    def constant(name: str) -> bytes:
        found = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', source)
        if found is None:
            raise VocabularyUnavailable(f"{tarball}: no {name} in llama-tokenizer.js")
        return base64.b64decode(found.group(1))

    pieces = constant("llama_vocab_base64").decode("utf-8").split("\n")
    pairs = constant("llama_merges_binary")
    ids = struct.unpack(f"<{len(pairs) // 2}H", pairs)
    merges = [(pieces[ids[k]], pieces[ids[k + 1]]) for k in range(0, len(ids), 2)]
    if len(pieces) != PIECES or len(merges) != MERGES or tuple(pieces[:3]) != SPECIALS:
        raise VocabularyUnavailable(f"{tarball}: {len(pieces)} pieces and {len(merges)} merges, not Llama's")
    return pieces, merges


def build_tokenizer(pieces: list[str], merges: list[tuple[str, str]]):
    """A ``tokenizers.Tokenizer`` that encodes as Llama-2's SentencePiece model does."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    vocab = {piece: index for index, piece in enumerate(pieces)}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in SPECIALS])
    for text, ids in KNOWN.items():
        if tokenizer.encode(text).ids != ids:
            raise VocabularyUnavailable(f"the built tokenizer encodes {text!r} as {tokenizer.encode(text).ids}")
    return tokenizer


def llama_tokenizer_json(cache: Path | None = None) -> Path:
    """Llama-2's tokenizer.json, built once into ``cache`` (default :func:`cache_dir`) from the npm package."""
    cache = cache or cache_dir()
    built = cache / "tokenizer.json"
    tarball = fetch_tarball(cache)
    if not built.is_file() or built.stat().st_mtime < tarball.stat().st_mtime:
        build_tokenizer(*read_package(tarball)).save(str(built))
    return built


if __name__ == "__main__":
    try:
        print(llama_tokenizer_json())
    except VocabularyUnavailable as err:
        sys.exit(f"llama_vocab: {err}")
