"""Corpus sources: where the documents that become prefills come from.

The paper took prefills from NeelNanda/c4-10k, pile-10k and code-10k on the Hugging Face hub.
Those need the network and the optional `datasets` package, so the package also ships an
offline, redistributable default corpus (prose and code; provenance and licences in
`data/CORPUS.md`, rebuilt by `scripts/build_corpus.py`).

`load_documents(source)` accepts:

- ``"default"``, ``"default:prose"``, ``"default:code"``: the bundled corpus or one half of it.
  Ids are ``default:<line>`` in the full corpus, so a subset keeps the ids of the whole.
- a ``.jsonl`` / ``.jsonl.gz`` file: one JSON object per line with a string `text_field`
  (and, optionally, a string ``"source"`` label). Id ``<file name>:<line index>``.
- a ``.txt`` file: one document per blank-line-separated block. Id ``<file name>:<block index>``.
- a directory: one document per ``*.txt`` file in it (recursively, sorted by path).
  Id ``<directory name>:<relative path>``.
- anything else that is not an existing path, e.g. ``NeelNanda/pile-10k``: a Hugging Face
  dataset (needs ``pip install 'blackbox-audit[datasets]'`` and the hub). Id ``<name>:<row>``.

Whitespace-only texts are skipped (they cannot yield a prefill) without renumbering the rest.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from blackbox_audit.records import Document

__all__ = [
    "DEFAULT_CORPUS_FILE",
    "DEFAULT_MANIFEST_FILE",
    "DEFAULT_MIN_CHARS",
    "CorpusError",
    "DatasetLike",
    "documents_from_dataset",
    "load_documents",
]

DEFAULT_CORPUS_FILE = "corpus.jsonl.gz"
DEFAULT_MANIFEST_FILE = "corpus_manifest.json"
DEFAULT_MIN_CHARS = 200
"""No bundled document is shorter than this many characters."""

_DEFAULT_SUBSETS = {"default": None, "default:prose": "prose/", "default:code": "code/"}
_DATASETS_HINT = "pip install 'blackbox-audit[datasets]'"


class CorpusError(ValueError):
    """A corpus could not be loaded; the message says what to do about it."""


class DatasetLike(Protocol):
    """What `documents_from_dataset` needs from a `datasets.Dataset`: column names and dict rows."""

    column_names: list[str]

    def __iter__(self) -> Iterator[Mapping[str, Any]]: ...


def load_documents(source: str, *, text_field: str = "text", split: str = "train") -> list[Document]:
    """Load every document of `source` (see the module docstring for what `source` may be)."""
    if source in _DEFAULT_SUBSETS:
        return _load_default(source)
    if source.startswith("default:"):
        raise CorpusError(f"unknown default subset {source!r}: use one of {', '.join(_DEFAULT_SUBSETS)}")
    path = Path(source).expanduser()
    if path.is_dir():
        return _nonempty(_load_txt_dir(path), source)
    if path.exists():
        return _nonempty(_load_file(path, text_field), source)
    if _looks_like_file(source):
        raise CorpusError(f"corpus file not found: {path} (check the path, or use 'default' for the bundled corpus)")
    return _load_hub(source, text_field=text_field, split=split)


def documents_from_dataset(dataset: DatasetLike, *, name: str, text_field: str) -> list[Document]:
    """Documents from a loaded Hugging Face dataset (or anything shaped like one)."""
    columns = list(dataset.column_names)
    if text_field not in columns:
        raise CorpusError(
            f"dataset {name} has no column {text_field!r} (columns: {', '.join(columns) or 'none'}); "
            "pass --text-field with one of those"
        )
    docs = []
    for index, row in enumerate(dataset):
        text = row[text_field]
        if not isinstance(text, str):
            raise CorpusError(f"dataset {name} row {index}: {text_field!r} is {type(text).__name__}, not a string")
        if text.strip():
            docs.append(Document(doc_id=f"{name}:{index}", source=name, text=text))
    return _nonempty(docs, name)


# --------------------------------------------------------------------------- bundled


def _load_default(source: str) -> list[Document]:
    prefix = _DEFAULT_SUBSETS[source]
    resource = resources.files("blackbox_audit").joinpath("data", DEFAULT_CORPUS_FILE)
    if not resource.is_file():
        raise CorpusError(
            f"the bundled corpus ({DEFAULT_CORPUS_FILE}) is missing from this installation; "
            "reinstall blackbox-audit, or rebuild it with `python scripts/build_corpus.py`"
        )
    with resource.open("rb") as f:
        records = list(_jsonl_records(gzip.decompress(f.read()), DEFAULT_CORPUS_FILE, "text"))
    docs = [
        Document(doc_id=f"default:{index}", source=label or "default", text=text)
        for index, label, text in records
        if prefix is None or (label or "").startswith(prefix)
    ]
    return _nonempty(docs, source)


# --------------------------------------------------------------------------- local files


def _looks_like_file(source: str) -> bool:
    return source.startswith((".", "/", "~")) or bool(
        re.search(r"\.(jsonl|json|gz|txt|csv|parquet)$", source, re.IGNORECASE)
    )


def _load_file(path: Path, text_field: str) -> list[Document]:
    name = path.name.lower()
    if name.endswith(".jsonl.gz"):
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as e:
            raise CorpusError(f"{path}: not a readable gzip file ({e}); re-compress it with `gzip`") from e
        return _from_jsonl(data, path, text_field)
    if name.endswith(".jsonl"):
        return _from_jsonl(path.read_bytes(), path, text_field)
    if name.endswith(".txt"):
        return _from_txt(path)
    raise CorpusError(
        f"{path}: unknown corpus format; use .jsonl, .jsonl.gz, .txt, a directory of .txt files, "
        "'default', or a Hugging Face dataset name"
    )


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            "convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
        ) from e


def _jsonl_records(data: bytes, label: str, text_field: str) -> Iterator[tuple[int, str | None, str]]:
    """(line index, optional source label, text) for each JSONL line with non-blank text."""
    for index, raw in enumerate(data.split(b"\n")):
        where = f"{label} line {index + 1}"
        line = _decode(raw, where).strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{where}: not valid JSON ({e.msg}); each line must be one JSON object") from e
        if not isinstance(record, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if text_field not in record:
            raise CorpusError(
                f"{where}: no {text_field!r} field (fields: {', '.join(map(str, record)) or 'none'}); "
                "pass --text-field with the name of the field that holds the text"
            )
        text = record[text_field]
        if not isinstance(text, str):
            raise CorpusError(f"{where}: {text_field!r} is {type(text).__name__}, not a string")
        source = record.get("source")
        if text.strip():
            yield index, source if isinstance(source, str) and source else None, text


def _from_jsonl(data: bytes, path: Path, text_field: str) -> list[Document]:
    stem = _stem(path)
    return [
        Document(doc_id=f"{path.name}:{index}", source=label or stem, text=text)
        for index, label, text in _jsonl_records(data, str(path), text_field)
    ]


def _from_txt(path: Path) -> list[Document]:
    lines = [_decode(raw, f"{path} line {n + 1}") for n, raw in enumerate(path.read_bytes().split(b"\n"))]
    blocks = re.split(r"\n[ \t]*\n", "\n".join(lines).replace("\r\n", "\n"))
    stem = _stem(path)
    return [
        Document(doc_id=f"{path.name}:{index}", source=stem, text=block.strip("\n"))
        for index, block in enumerate(b for b in blocks if b.strip())
    ]


def _load_txt_dir(path: Path) -> list[Document]:
    files = sorted(path.rglob("*.txt"))
    if not files:
        raise CorpusError(f"corpus folder {path} holds no .txt files (a folder corpus is one document per .txt file)")
    docs = []
    for file in files:
        rel = file.relative_to(path).as_posix()
        lines = [_decode(raw, f"{file} line {n + 1}") for n, raw in enumerate(file.read_bytes().split(b"\n"))]
        text = "\n".join(lines)
        if text.strip():
            docs.append(Document(doc_id=f"{path.name}:{rel}", source=path.name, text=text))
    return docs


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".txt"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _nonempty(docs: Iterable[Document], source: str) -> list[Document]:
    out = list(docs)
    if not out:
        raise CorpusError(f"corpus {source} has no documents (every text is empty or whitespace); check the source")
    return out


# --------------------------------------------------------------------------- Hugging Face hub


def _load_hub(name: str, *, text_field: str, split: str) -> list[Document]:
    try:
        import datasets  # optional extra
    except ImportError as e:
        raise CorpusError(
            f"{name!r} is not a local file, so it was taken as a Hugging Face dataset, which needs the "
            f"optional `datasets` package: {_DATASETS_HINT} (or pass a local .jsonl / .txt file, or 'default')"
        ) from e
    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as e:  # the hub client raises many unrelated types
        raise CorpusError(
            f"could not load Hugging Face dataset {name!r} (split {split!r}): {type(e).__name__}: {e}. "
            "Check the name and your network access to the hub; offline, export it where the hub is "
            "reachable (`datasets.load_dataset(...).to_json('corpus.jsonl')`) and pass that file, "
            "or use 'default' for the bundled corpus."
        ) from e
    return documents_from_dataset(dataset, name=name, text_field=text_field)
