"""Corpus sources: the bundled default corpus, local files, and the Hugging Face dataset path."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import types
from importlib import resources
from pathlib import Path

import pytest

from blackbox_audit.corpus import (
    DEFAULT_CORPUS_FILE,
    DEFAULT_MANIFEST_FILE,
    DEFAULT_MIN_CHARS,
    CorpusError,
    documents_from_dataset,
    load_documents,
)
from blackbox_audit.records import Document

DATA = resources.files("blackbox_audit").joinpath("data")


def _manifest() -> dict:
    return json.loads(DATA.joinpath(DEFAULT_MANIFEST_FILE).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- bundled corpus


def test_default_corpus_loads_with_prose_and_code():
    docs = load_documents("default")
    assert len(docs) >= 1500
    sources = {d.source for d in docs}
    assert any(s.startswith("prose/") for s in sources)
    assert any(s.startswith("code/") for s in sources)
    assert all(isinstance(d, Document) for d in docs)


def test_default_corpus_ids_are_unique_and_positional():
    docs = load_documents("default")
    assert [d.doc_id for d in docs] == [f"default:{i}" for i in range(len(docs))]


def test_default_corpus_is_stable_across_loads():
    assert load_documents("default") == load_documents("default")


def test_default_corpus_respects_minimum_length():
    short = [d.doc_id for d in load_documents("default") if len(d.text) < DEFAULT_MIN_CHARS]
    assert short == []


def test_default_corpus_has_no_duplicates():
    texts = [" ".join(d.text.split()).lower() for d in load_documents("default")]
    assert len(set(texts)) == len(texts)


def test_default_corpus_matches_its_manifest():
    manifest = _manifest()
    blob = DATA.joinpath(DEFAULT_CORPUS_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == manifest["sha256"]
    docs = load_documents("default")
    assert len(docs) == manifest["n_documents"]
    counts: dict[str, int] = {}
    for d in docs:
        counts[d.source] = counts.get(d.source, 0) + 1
    assert counts == manifest["counts"]
    assert manifest["min_chars"] == DEFAULT_MIN_CHARS


def test_default_subsets_partition_the_corpus_and_keep_ids():
    full = {d.doc_id: d for d in load_documents("default")}
    prose = load_documents("default:prose")
    code = load_documents("default:code")
    assert prose and code
    assert all(d.source.startswith("prose/") for d in prose)
    assert all(d.source.startswith("code/") for d in code)
    assert all(full[d.doc_id] == d for d in prose + code)
    assert len(prose) + len(code) == len(full)


def test_unknown_default_subset_names_the_choices():
    with pytest.raises(CorpusError, match="default:prose"):
        load_documents("default:poetry")


def test_corpus_doc_states_every_source_and_count():
    text = DATA.joinpath("CORPUS.md").read_text(encoding="utf-8")
    for label, count in _manifest()["counts"].items():
        assert label in text, label
        assert str(count) in text, (label, count)


# --------------------------------------------------------------------------- local files


def _write_jsonl(path: Path, records: list[dict], *, blank_line_at: int | None = None) -> None:
    lines = [json.dumps(r) for r in records]
    if blank_line_at is not None:
        lines.insert(blank_line_at, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "mini.jsonl"
    _write_jsonl(
        path,
        [
            {"text": "first document", "meta": 1},
            {"text": "   "},  # whitespace only: skipped, ids of the rest unchanged
            {"text": "third, labelled", "source": "web"},
        ],
        blank_line_at=1,
    )
    docs = load_documents(str(path))
    assert docs == [
        Document(doc_id="mini.jsonl:0", source="mini", text="first document"),
        Document(doc_id="mini.jsonl:3", source="web", text="third, labelled"),
    ]
    assert load_documents(str(path)) == docs


def test_jsonl_gz_round_trip_and_custom_text_field(tmp_path):
    path = tmp_path / "mini.jsonl.gz"
    payload = "".join(json.dumps({"content": t}) + "\n" for t in ["alpha", "beta ünïcode"])
    path.write_bytes(gzip.compress(payload.encode("utf-8")))
    docs = load_documents(str(path), text_field="content")
    assert [(d.doc_id, d.source, d.text) for d in docs] == [
        ("mini.jsonl.gz:0", "mini", "alpha"),
        ("mini.jsonl.gz:1", "mini", "beta ünïcode"),
    ]


def test_bundled_format_round_trips_through_a_local_file(tmp_path):
    path = tmp_path / "copy.jsonl.gz"
    path.write_bytes(DATA.joinpath(DEFAULT_CORPUS_FILE).read_bytes())
    local = load_documents(str(path))
    bundled = load_documents("default")
    assert [(d.source, d.text) for d in local] == [(d.source, d.text) for d in bundled]


def test_txt_file_is_one_document_per_blank_line_block(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("para one\nstill one\n\n\n  \npara two\r\n\r\npara three\n", encoding="utf-8")
    docs = load_documents(str(path))
    assert [(d.doc_id, d.source, d.text) for d in docs] == [
        ("notes.txt:0", "notes", "para one\nstill one"),
        ("notes.txt:1", "notes", "para two"),
        ("notes.txt:2", "notes", "para three"),
    ]


def test_txt_directory_is_one_document_per_file(tmp_path):
    root = tmp_path / "books"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("B text\n\nwith two blocks", encoding="utf-8")
    (root / "sub" / "a.txt").write_text("A text", encoding="utf-8")
    (root / "empty.txt").write_text("\n", encoding="utf-8")
    (root / "ignored.md").write_text("not a txt file", encoding="utf-8")
    docs = load_documents(str(root))
    assert [(d.doc_id, d.source, d.text) for d in docs] == [
        ("books:b.txt", "books", "B text\n\nwith two blocks"),
        ("books:sub/a.txt", "books", "A text"),
    ]


# --------------------------------------------------------------------------- errors


def test_error_is_a_value_error():
    assert issubclass(CorpusError, ValueError)


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.jsonl.gz", "missing.txt", "./missing"])
def test_missing_file(tmp_path, name):
    with pytest.raises(CorpusError, match="not found"):
        load_documents(str(tmp_path / name) if not name.startswith(".") else name)


def test_empty_file_is_an_empty_corpus(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no documents"):
        load_documents(str(path))


def test_whitespace_only_texts_are_an_empty_corpus(tmp_path):
    path = tmp_path / "blank.jsonl"
    _write_jsonl(path, [{"text": ""}, {"text": " \n "}])
    with pytest.raises(CorpusError, match="no documents"):
        load_documents(str(path))


def test_a_folder_without_txt_files_says_so(tmp_path):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.md").write_text("# not a .txt file\n")
    with pytest.raises(CorpusError, match=r"holds no \.txt files"):
        load_documents(str(tmp_path / "nothing"))


def test_a_folder_of_blank_txt_files_is_an_empty_corpus(tmp_path):
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n\n")
    with pytest.raises(CorpusError, match="no documents"):
        load_documents(str(tmp_path / "blank"))


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=r"latin\.jsonl line 2: not valid UTF-8 \(byte 0xe9") as info:
        load_documents(str(path))
    assert "iconv" in str(info.value)


def test_non_utf8_gz_and_txt_name_the_line(tmp_path):
    gz = tmp_path / "bad.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"text": "\xff"}\n'))
    with pytest.raises(CorpusError, match=r"bad\.jsonl\.gz line 1: not valid UTF-8"):
        load_documents(str(gz))
    txt = tmp_path / "bad.txt"
    txt.write_bytes(b"ok\n\nok\nbad \x80 byte\n")
    with pytest.raises(CorpusError, match=r"bad\.txt line 4: not valid UTF-8"):
        load_documents(str(txt))


def test_jsonl_line_without_text_field_names_line_and_fields(tmp_path):
    path = tmp_path / "nofield.jsonl"
    _write_jsonl(path, [{"text": "ok"}, {"body": "no text here", "id": 7}])
    with pytest.raises(CorpusError, match=r"line 2: no 'text' field \(fields: body, id\).*--text-field"):
        load_documents(str(path))


def test_jsonl_non_string_text_and_bad_json(tmp_path):
    path = tmp_path / "types.jsonl"
    _write_jsonl(path, [{"text": 42}])
    with pytest.raises(CorpusError, match="line 1: 'text' is int, not a string"):
        load_documents(str(path))
    path.write_text('{"text": "ok"}\n{not json}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="line 2: not valid JSON"):
        load_documents(str(path))
    path.write_text('["a list"]\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="expected a JSON object"):
        load_documents(str(path))


def test_unknown_format(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"unknown corpus format; use \.jsonl, \.jsonl\.gz, \.txt"):
        load_documents(str(path))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(CorpusError, match="not a readable gzip file"):
        load_documents(str(path))


# --------------------------------------------------------------------------- dataset objects and the hub


class FakeDataset:
    """Stands in for `datasets.Dataset`: `column_names` plus iteration over dict rows."""

    def __init__(self, rows: list[dict]) -> None:
        self._rows = rows
        self.column_names = list(rows[0]) if rows else ["text"]

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def test_documents_from_dataset_object():
    ds = FakeDataset([{"text": "one", "meta": 0}, {"text": ""}, {"text": "three", "meta": 2}])
    docs = documents_from_dataset(ds, name="NeelNanda/pile-10k", text_field="text")
    assert docs == [
        Document(doc_id="NeelNanda/pile-10k:0", source="NeelNanda/pile-10k", text="one"),
        Document(doc_id="NeelNanda/pile-10k:2", source="NeelNanda/pile-10k", text="three"),
    ]


def test_documents_from_dataset_missing_column_lists_columns():
    ds = FakeDataset([{"content": "x", "lang": "en"}])
    with pytest.raises(CorpusError, match=r"no column 'text' \(columns: content, lang\)"):
        documents_from_dataset(ds, name="some/ds", text_field="text")


def test_documents_from_dataset_rejects_non_strings_and_empty():
    with pytest.raises(CorpusError, match="row 1: 'text' is NoneType"):
        documents_from_dataset(FakeDataset([{"text": "a"}, {"text": None}]), name="d", text_field="text")
    with pytest.raises(CorpusError, match="no documents"):
        documents_from_dataset(FakeDataset([]), name="d", text_field="text")


def test_documents_from_real_dataset():
    datasets = pytest.importorskip("datasets", reason="the optional `datasets` package is not installed")
    ds = datasets.Dataset.from_dict({"text": ["alpha", "beta"], "meta": [1, 2]})
    docs = documents_from_dataset(ds, name="local/ds", text_field="text")
    assert [(d.doc_id, d.text) for d in docs] == [("local/ds:0", "alpha"), ("local/ds:1", "beta")]


def test_hub_name_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(CorpusError, match=r"pip install 'blackbox-audit\[datasets\]'"):
        load_documents("NeelNanda/pile-10k")


def test_hub_unreachable_is_a_clear_error(monkeypatch):
    def load_dataset(name, split):
        raise ConnectionError("Couldn't reach 'NeelNanda/pile-10k' on the Hub")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(CorpusError, match="could not load Hugging Face dataset 'NeelNanda/pile-10k'") as info:
        load_documents("NeelNanda/pile-10k")
    assert "network" in str(info.value) and "to_json" in str(info.value)


def test_hub_dataset_goes_through_documents_from_dataset(monkeypatch):
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        return FakeDataset([{"code": "def f(): pass"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    docs = load_documents("NeelNanda/code-10k", text_field="code", split="validation")
    assert calls == [("NeelNanda/code-10k", "validation")]
    assert docs == [Document(doc_id="NeelNanda/code-10k:0", source="NeelNanda/code-10k", text="def f(): pass")]
