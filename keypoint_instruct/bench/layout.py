"""The benchmark folder on disk, and the answers file: typed rows, read and written as JSON lines.

A benchmark folder (what ``bench build`` writes) is self-contained::

    questions.jsonl    one question per line: question_id, image, image_id, category, text
    references.jsonl   the teacher's answer per question: question_id, category, text, teacher_model, response_key
    contexts.jsonl     the judge's view of each image: image_id, image, coco_split, context
    images/            the benchmark's images, named as in COCO
    meta.json          how it was built (split, seed, teacher, prompt versions)
    hub/               the ``hpaub`` config as a Hub dataset folder (parquet + README with ``configs:``)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

from keypoint_instruct.errors import BenchmarkError, InputNotFoundError
from keypoint_instruct.vocab import TASKS

log = logging.getLogger(__name__)

CATEGORY_TITLES = {
    "conversation": "Conversation",
    "detailed_description": "Detailed description",
    "complex_reasoning": "Complex reasoning",
}


@dataclass(frozen=True)
class Question:
    question_id: str
    image: str  # file name under <bench>/images
    image_id: int
    category: str
    text: str


@dataclass(frozen=True)
class Reference:
    question_id: str
    category: str
    text: str
    teacher_model: str
    response_key: str


@dataclass(frozen=True)
class ImageContext:
    image_id: int
    image: str
    coco_split: str
    context: str


@dataclass(frozen=True)
class Answer:
    question_id: str
    model: str  # the name the report shows
    text: str
    backend: str
    model_path: str
    question: str = ""  # the question asked; "" in answer files written before it was kept


def question_id(category: str, image_id: int) -> str:
    """The id of the benchmark question of ``category`` about image ``image_id``."""
    return f"{category}-{image_id}"


def write_jsonl(path: Path, rows: Iterable[object]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


def append_jsonl(path: Path, rows: Iterable[object]) -> None:
    """Append rows and flush to disk at once, so an interrupted run keeps what it has done."""
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        fh.flush()


def drop_torn_tail(path: Path) -> bool:
    """Cut a last line that a killed writer left half-written (no newline, not JSON); True when one was cut.

    ``append_jsonl`` ends every row with a newline, so only the final line of a file can be torn. A complete last
    line, a bad line anywhere else, or a file that is not JSON lines at all (its complete lines not UTF-8 text, its
    last line not the start of a JSON object: an image given as the answers file) is left alone for the reader to
    report.
    """
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        data = fh.read()
    if not data or data.endswith(b"\n"):
        return False
    start = data.rfind(b"\n") + 1
    try:
        data[:start].decode("utf-8")
    except UnicodeDecodeError:
        return False  # not a JSON-lines file: never cut someone else's file
    if not data[start:].lstrip().startswith(b"{"):
        return False
    try:
        json.loads(data[start:])
        return False
    except ValueError:
        pass
    with open(path, "r+b") as fh:
        fh.truncate(start)
    log.warning("%s: dropped its last line, cut short by an interrupted run; that question is answered again", path)
    return True


def check_readable(path: Path, what: str) -> None:
    """A file the user named must be a file: one line naming it when it is missing or a folder."""
    if path.is_dir():
        raise BenchmarkError(f"{path} is a folder, not a file (expected {what})")
    if not path.is_file():
        raise InputNotFoundError(f"{path} does not exist (expected {what})")


def read_text(path: Path, what: str) -> str:
    """The text of a file the user named: one line naming it when it is missing, a folder, unreadable or not UTF-8
    (an image given for a JSON file)."""
    check_readable(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path} is not UTF-8 text (expected {what})") from None
    except OSError as err:
        raise BenchmarkError(f"cannot read {path}: {err.strerror or err}") from None


def _read_jsonl(path: Path, cls: type, what: str = "a JSON-lines file") -> Iterator:
    fields = cls.__dataclass_fields__
    names = {name for name, f in fields.items() if f.default is MISSING}  # required; the others have defaults
    text = read_text(path, what)
    for lineno, line in enumerate(io.StringIO(text), 1):  # lines end at \n only, as written (not at U+2028)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkError(f"{path}:{lineno}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not names <= set(row):
            missing = sorted(names - set(row)) if isinstance(row, dict) else sorted(names)
            raise BenchmarkError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        yield cls(**{name: row[name] for name in fields if name in row})


@dataclass(frozen=True)
class Bench:
    """A benchmark folder read back and checked: every question has a reference, a context and its image."""

    root: Path
    questions: tuple[Question, ...]
    references: dict[str, Reference]
    contexts: dict[int, ImageContext]
    meta: dict

    def image_path(self, question: Question) -> Path:
        return self.root / "images" / question.image

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.question_id: q for q in self.questions}

    @property
    def fingerprint(self) -> str:
        """A hash of what answers and judgements depend on: the questions, the references and the judge's contexts.

        Two builds with the same images and seed share their question ids; another teacher, context mode or cache
        gives other questions or references, and so another fingerprint.
        """
        rows = {
            "questions": sorted([q.question_id, q.image, q.image_id, q.category, q.text] for q in self.questions),
            "references": sorted([r.question_id, r.text] for r in self.references.values()),
            "contexts": sorted([c.image_id, c.context] for c in self.contexts.values()),
        }
        blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_bench(root: str | Path) -> Bench:
    """Read a benchmark folder written by ``bench build``; raise a one-line error on anything missing."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise BenchmarkError(f"benchmark folder {root} is a file (expected the folder `bench build` writes)")
    if not root.is_dir():
        raise InputNotFoundError(f"benchmark folder {root} does not exist (run `keypoint-instruct bench build`)")
    rows = "a JSON-lines file written by `bench build`"
    questions = tuple(_read_jsonl(root / "questions.jsonl", Question, rows))
    references = {r.question_id: r for r in _read_jsonl(root / "references.jsonl", Reference, rows)}
    contexts = {c.image_id: c for c in _read_jsonl(root / "contexts.jsonl", ImageContext, rows)}
    meta = _read_meta(root / "meta.json")
    seen: set[str] = set()
    for q in questions:
        if q.question_id in seen:
            raise BenchmarkError(f"{root / 'questions.jsonl'}: question_id {q.question_id!r} appears twice")
        seen.add(q.question_id)
        if q.category not in TASKS:
            raise BenchmarkError(f"question {q.question_id}: unknown category {q.category!r} (expected {TASKS})")
        if q.question_id not in references:
            raise BenchmarkError(f"question {q.question_id} has no reference answer in {root / 'references.jsonl'}")
        if q.image_id not in contexts:
            raise BenchmarkError(f"question {q.question_id}: image {q.image_id} has no context in contexts.jsonl")
        if not (root / "images" / q.image).is_file():
            raise InputNotFoundError(f"question {q.question_id}: image {root / 'images' / q.image} is missing")
    if not questions:
        raise BenchmarkError(f"{root / 'questions.jsonl'} holds no questions")
    return Bench(root=root, questions=questions, references=references, contexts=contexts, meta=meta)


def _read_meta(path: Path) -> dict:
    """``meta.json`` of a benchmark folder ({} when absent): a JSON object, or one line naming the file."""
    if not path.exists():
        return {}
    try:
        meta = json.loads(read_text(path, "the JSON object `bench build` writes"))
    except json.JSONDecodeError as err:
        raise BenchmarkError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(meta, dict):
        raise BenchmarkError(f"{path}: not a JSON object (expected the one `bench build` writes)")
    return meta


def load_answers(path: str | Path, bench: Bench | None = None, *, missing_ok: bool = False) -> dict[str, Answer]:
    """Answers by question id (the last line wins); with ``bench``, reject answers to unknown questions."""
    path = Path(path)
    if missing_ok and not path.exists():
        return {}
    answers: dict[str, Answer] = {}
    for answer in _read_jsonl(path, Answer, "a JSON-lines answers file written by `bench answer`"):
        answers[answer.question_id] = answer
    if bench is not None:
        known = bench.by_id
        unknown = sorted(set(answers) - set(known))
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise BenchmarkError(
                f"{path}: answers to questions not in benchmark {bench.root}: {', '.join(unknown[:3])}{more}"
            )
        other = sorted(q for q, a in answers.items() if a.question and a.question != known[q].text)
        if other:
            raise BenchmarkError(
                f"{path}: the answer to {other[0]} (and {len(other) - 1} more) was given to another question than "
                f"{bench.root} asks: it was made for another build of the benchmark; answer again into a new file"
            )
    models = {a.model for a in answers.values()}
    if len(models) > 1:
        raise BenchmarkError(f"{path}: answers from several models ({', '.join(sorted(models))}); use one file each")
    return answers
