"""One name per setting: the CLI takes task names, context modes and default models from vocab, never retypes them."""

from __future__ import annotations

import ast

from keypoint_instruct import vocab
from tests.paths import REPO

CLI = REPO / "keypoint_instruct" / "cli"
NAMES = {*vocab.TASKS, vocab.ALL, *vocab.CONTEXT_MODES, vocab.DEFAULT_CONTEXT_MODE}
MODELS = {vocab.TEACHER_MODEL, vocab.JUDGE_MODEL, vocab.OFFLINE_TEACHER_MODEL, vocab.OFFLINE_JUDGE_MODEL}


def test_cli_modules_import_the_vocabulary_instead_of_retyping_it():
    retyped = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value
            if text in NAMES or any(model in text for model in MODELS) or "paper+facts" in text:
                retyped.append(f"{path.relative_to(REPO)}:{node.lineno} {text[:60]!r}")
    assert not retyped, "use keypoint_instruct.vocab:\n" + "\n".join(retyped)
