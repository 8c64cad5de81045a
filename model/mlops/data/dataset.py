"""Build, validate, split and version the dataset.

A dataset is a folder ``<datasets>/<hash>/`` holding ``corpus.jsonl`` (the symbols),
``train|validation|test.jsonl`` (question/symbol pairs) and, when annotators marked any, ``off_topic.jsonl`` (questions
reviewed as not about the library: training-side data, never an evaluation set). ``hash`` is the SHA-256 of the content,
so the same source always gives the same dataset id, and ``LATEST`` names the newest one.
Splits are made per passage (a symbol's text): a passage, and every question about it, lives in
exactly one split, so nothing the model trained on is scored as held out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from mlops.core.errors import MlopsError
from mlops.core.files import write_atomic
from mlops.data.corpus import Symbol
from mlops.data.feedback import FeedbackRow, OffTopicExample, from_feedback
from mlops.data.labelled import LabelledQuestion, labelled_pairs
from mlops.data.questions import Pair, questions_for
from mlops.data.text import passage

SPLITS = ("train", "validation", "test")
SPLIT_PERCENT = {"train": 80, "validation": 10, "test": 10}
OFF_TOPIC = "off_topic.jsonl"
LATEST = "LATEST"
FORMAT_VERSION = 1


def split_of(passage_text: str) -> str:
    """Deterministic split by a hash of the passage text (not of its position or a random seed)."""
    bucket = int(hashlib.sha256(passage_text.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < SPLIT_PERCENT["train"] else ("validation" if bucket < 90 else "test")


def make_pairs(symbols: Iterable[Symbol]) -> tuple[list[Pair], dict[str, int]]:
    """All pairs, deduplicated; a question that would point at two different symbols is dropped as ambiguous."""
    by_question: dict[str, set[str]] = defaultdict(set)
    first: dict[tuple[str, str], Pair] = {}
    generated = 0
    for symbol in symbols:
        for pair in questions_for(symbol):
            generated += 1
            key = (pair.question.lower(), pair.symbol)
            by_question[key[0]].add(pair.symbol)
            first.setdefault(key, pair)
    pairs = [p for (q, _), p in first.items() if len(by_question[q]) == 1]
    stats = {"generated": generated, "duplicates": generated - len(first), "ambiguous": len(first) - len(pairs), "kept": len(pairs)}
    return pairs, stats


def dedupe_symbols(symbols: Iterable[Symbol]) -> list[Symbol]:
    seen: dict[str, Symbol] = {}
    for s in symbols:
        seen.setdefault(s.symbol, s)  # a name defined twice (e.g. under `if TYPE_CHECKING`) keeps its first definition
    return sorted(seen.values(), key=lambda s: s.symbol)


def expand_documents(symbols: list[Symbol], labelled: Iterable[Pair], split_by_symbol: dict[str, str]) -> list[Symbol]:
    """Each train-split symbol with its labelled questions (document expansion); held-out symbols keep theirs out
    of the index, so a held-out labelled question never finds itself."""
    asked: dict[str, list[str]] = defaultdict(list)
    for pair in labelled:
        if split_by_symbol[pair.symbol] == "train":
            asked[pair.symbol].append(pair.question)
    return [s.model_copy(update={"labelled_questions": tuple(sorted(asked[s.symbol]))}) if s.symbol in asked else s for s in symbols]


def _jsonl(records: Iterable[BaseModel]) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


def build_dataset(symbols: list[Symbol], datasets_dir: Path, source: str, labelled_set: Iterable[LabelledQuestion] = (),
                  feedback: Iterable[FeedbackRow] = (), held_out: Iterable[str] = (), package: dict | None = None) -> tuple[str, dict]:
    """Write a new dataset version (atomically) and return its hash and manifest. Labelled questions join the rule
    pairs in their symbol's split, so a labelled question about a test symbol stays in test; feedback joins the train
    split only (mlops.data.feedback), never near an evaluation question of ``held_out``; so do reviewed off-topic
    questions, in their own file."""
    symbols = dedupe_symbols(symbols)
    split_by_symbol = {s.symbol: split_of(passage(s)) for s in symbols}
    pairs, stats = make_pairs(symbols)
    made = {(p.question.lower(), p.symbol) for p in pairs}
    written = [p for p in labelled_pairs(labelled_set, {s.symbol: s for s in symbols}) if (p.question.lower(), p.symbol) not in made]
    made |= {(p.question.lower(), p.symbol) for p in written}
    users = from_feedback(feedback, split_by_symbol, held_out)
    from_users = [p for p in users.pairs if (p.question.lower(), p.symbol) not in made]
    pairs, stats = pairs + written + from_users, {**stats, "labelled": len(written), "feedback": len(from_users)}
    symbols = expand_documents(symbols, written, split_by_symbol)
    files = {"corpus.jsonl": _jsonl(symbols)}
    if users.off_topic:  # only then: a dataset without reviews keeps the hash it always had
        files[OFF_TOPIC] = _jsonl(users.off_topic)
    for split in SPLITS:
        chosen = sorted((p for p in pairs if split_by_symbol[p.symbol] == split), key=lambda p: (p.symbol, p.question))
        files[f"{split}.jsonl"] = _jsonl(chosen)
    dataset_hash = _digest(files)
    manifest = {
        "hash": dataset_hash,
        "format": FORMAT_VERSION,
        "source": source,
        "package": package,  # what was read and where the links point (mlops.data.links.with_links)
        "symbols": len(symbols),
        "pairs": stats,
        "splits": {s: files[f"{s}.jsonl"].count("\n") for s in SPLITS},
        "rules": {r: sum(p.rule == r for p in pairs) for r in sorted({p.rule for p in pairs})},
        "expansion": {"symbols": sum(bool(s.labelled_questions) for s in symbols),
                      "questions": sum(len(s.labelled_questions) for s in symbols)},
        "off_topic": len(users.off_topic),
        "feedback_left_out": users.left_out,
    }
    target = datasets_dir / dataset_hash
    if not target.exists():
        _write_folder(target, {**{n: text.encode() for n, text in files.items()},
                               "manifest.json": json.dumps(manifest, indent=2).encode()})
    write_atomic(datasets_dir / LATEST, dataset_hash + "\n")
    return dataset_hash, manifest


def files_of(folder: Path) -> dict[str, bytes]:
    """A dataset version's files, to recreate it where its folder is not (a Ray worker on another node)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def restore(datasets_dir: Path, files: dict[str, bytes]) -> Path:
    """The folder of the dataset version ``files`` holds (from :func:`files_of`), written if it is not there. The
    content must hash to the manifest's hash: a version is never written under a name it does not have."""
    dataset_hash = json.loads(files["manifest.json"])["hash"]
    target = datasets_dir / dataset_hash
    if not (target / "manifest.json").is_file():
        found = _digest({n: b.decode() for n, b in files.items() if n != "manifest.json"})
        if found != dataset_hash:
            raise MlopsError(f"dataset {dataset_hash}: its files hash to {found}; send the whole folder again")
        _write_folder(target, files)
    return target


def _digest(files: dict[str, str]) -> str:
    """A dataset version's hash: of its format and every file but the manifest, by name."""
    digest = hashlib.sha256(f"format={FORMAT_VERSION}\n".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode())
    return digest.hexdigest()[:16]


def _write_folder(target: Path, files: dict[str, bytes]) -> None:
    """``target`` with exactly ``files``, all or nothing (a reader never sees half a version)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "manifest.json").is_file():  # else another writer was first, with the same content (its hash)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def resolve(datasets_dir: Path, dataset_hash: str | None) -> Path:
    """The folder of a dataset version (the latest when ``dataset_hash`` is None)."""
    if dataset_hash is None:
        latest = datasets_dir / LATEST
        if not latest.is_file():
            raise MlopsError(f"no dataset in {datasets_dir}; run `mlops data` first")
        dataset_hash = latest.read_text(encoding="utf-8").strip()
    folder = datasets_dir / dataset_hash
    if not (folder / "manifest.json").is_file():
        known = sorted(p.name for p in datasets_dir.glob("*") if (p / "manifest.json").is_file()) if datasets_dir.is_dir() else []
        raise MlopsError(f"unknown dataset {dataset_hash!r} in {datasets_dir}; known: {', '.join(known) or 'none'} (run `mlops data`)")
    return folder


def _read_jsonl(path: Path, model: type[BaseModel]) -> list:
    if not path.is_file():
        raise MlopsError(f"dataset file {path} is missing; rebuild it with `mlops data`")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(model.model_validate_json(line))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(x) for x in problem["loc"]) or "(line)"
            raise MlopsError(
                f"{path}:{number}: field {field!r}: {problem['msg']}; "
                f"the file does not match the {model.__name__} schema, rebuild it with `mlops data`"
            ) from None
    return records


def load_corpus(folder: Path) -> list[Symbol]:
    return _read_jsonl(folder / "corpus.jsonl", Symbol)


def load_split(folder: Path, split: str) -> list[Pair]:
    if split not in SPLITS:
        raise MlopsError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return _read_jsonl(folder / f"{split}.jsonl", Pair)


def load_off_topic(folder: Path) -> list[OffTopicExample]:
    return _read_jsonl(folder / OFF_TOPIC, OffTopicExample) if (folder / OFF_TOPIC).is_file() else []


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
