"""The package's shape (ARCHITECTURE.md, "Import rule"): imports run downstream only, no cycles, small modules.

Every import in the package counts, also one inside a function: a lazy import that runs upstream is still an
upstream dependency. A test that fails here names the module, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

PACKAGE = REPO / "keypoint_instruct"
ROOT = "keypoint_instruct"

# The data path, top to bottom. A module may import from its own stage and the stages above it; `errors` and
# `vocab` are for everyone. Inside `llm`, the same rule orders its parts.
STAGES = ("coco", "llm", "teacher", "dataset", "review", "training", "bench", "cli")
SHARED = ("errors", "vocab")
LLM_PARTS = ("request", "pricing", "providers", "store", "online", "batch")
# The LLM layer knows nothing about COCO, though COCO comes first on the data path.
FORBIDDEN = {("llm", "coco")}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
SIZE_REASON = "# long:"  # on the def line or the line above it: why this function is longer


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``, resolved to a module of the package where it is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                out.append((submodule if submodule in MODULES else base, node.lineno))
    return out


def place(module: str) -> tuple[int, int] | None:
    """(stage rank, part rank) of a package module; None for shared modules and the package root."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in SHARED or parts[1] in ("__main__",):
        return None
    stage = STAGES.index(parts[1])
    part = LLM_PARTS.index(parts[2]) if parts[1] == "llm" and len(parts) > 2 else -1
    return stage, part


def test_every_module_belongs_to_a_stage():
    for name in MODULES:
        parts = name.split(".")
        assert len(parts) == 1 or parts[1] in (*STAGES, *SHARED, "__main__"), f"{name}: not in a stage package"
        if len(parts) > 2 and parts[1] == "llm":
            assert parts[2] in LLM_PARTS, f"{name}: not in one of the llm parts {LLM_PARTS}"


def test_imports_run_downstream_only():
    wrong = []
    for name, path in MODULES.items():
        here = place(name)
        for target, line in imports_of(name, path):
            if target in ("builder", "train_sft") or target.split(".")[0] == "tests":
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}: the package never imports the "
                             "repository root or the tests")  # fmt: skip
                continue
            if not target.startswith(ROOT + ".") or here is None:
                continue
            there = place(target)
            if there is None:
                continue
            stage_here, stage_there = STAGES[here[0]], STAGES[there[0]]
            if there[0] > here[0] or (stage_here, stage_there) in FORBIDDEN:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({stage_here}) imports {target} ({stage_there})")
            elif there[0] == here[0] and here[1] >= 0 and there[1] > here[1]:
                wrong.append(
                    f"{path.relative_to(REPO)}:{line} (llm.{LLM_PARTS[here[1]]}) imports {target} "
                    f"(llm.{LLM_PARTS[there[1]]}): inside llm the order is {' < '.join(LLM_PARTS)}"
                )
    assert not wrong, "imports that run upstream:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = {
        name: {t for t, _ in imports_of(name, path) if t in MODULES and t != name} for name, path in MODULES.items()
    }
    # A package's __init__ importing nothing of its own keeps `pkg` -> `pkg.mod` edges out of the way.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_rule_catches_an_upstream_import(tmp_path, monkeypatch):
    """The checks above can fail: an llm module importing COCO, and a coco module importing the CLI, are named."""
    fake = {
        "keypoint_instruct.llm.store.bad": "from keypoint_instruct.coco.annotations import Scene\n",
        "keypoint_instruct.coco.bad": "def f():\n    from keypoint_instruct.cli import main\n",
    }
    for name, text in fake.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        found = [place(target) for target, _ in imports_of(name, path)]
        here = place(name)
        assert any(t is not None and (t[0] > here[0] or (STAGES[here[0]], STAGES[t[0]]) in FORBIDDEN) for t in found)


def _has_reason(lines: list[str], node: ast.AST) -> bool:
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    return any(SIZE_REASON in lines[i - 1] for i in (first - 1, first, node.lineno) if 0 < i <= len(lines))


def test_modules_and_functions_stay_readable_in_one_sitting():
    too_long = []
    for path in MODULES.values():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {len(lines)} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _has_reason(lines, node):
                    too_long.append(
                        f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines (at most "
                        f"{MAX_FUNCTION_LINES}, or say why with a '{SIZE_REASON} ...' comment above it)"
                    )
    assert not too_long, "\n".join(too_long)
