"""Stage 1, prefills: first k tokens, dedup, seeded order, limit, skips, tokenizer choice."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from blackbox_audit import prefills as prefills_module
from blackbox_audit.prefills import (
    EndpointTokenizer,
    RegexTokenizer,
    TiktokenTokenizer,
    prefill_id,
    select_prefills,
    tokenizer_for,
)
from blackbox_audit.records import Document
from providers.errors import CapabilityError
from providers.registry import connect

pytestmark = pytest.mark.anyio


class WordTokenizer:
    """Fake PrefillTokenizer: a token is a word with its leading whitespace ("a", " b", " c")."""

    name = "words"

    def __init__(self):
        self.calls = 0

    async def first_tokens(self, text: str, k: int) -> str | None:
        self.calls += 1
        pieces = re.findall(r"\s*\S+", text)
        return "".join(pieces[:k]) if len(pieces) >= k else None


class NormalisingTokenizer(WordTokenizer):
    """Like an endpoint that collapses whitespace: its prefill can stop being a literal prefix."""

    name = "normalising"

    async def first_tokens(self, text: str, k: int) -> str | None:
        words = text.split()
        return " ".join(words[:k]) if len(words) >= k else None


def docs(*texts: str, source: str = "test") -> list[Document]:
    return [Document(doc_id=f"{source}:{i}", source=source, text=t) for i, t in enumerate(texts)]


def many_docs(n: int) -> list[Document]:
    return docs(*(f"doc{i} word{i} more{i} tail of document {i}" for i in range(n)))


async def select(documents, tokenizer=None, *, k=3, seed=0, limit=None, workers=8):
    return await select_prefills(documents, tokenizer or WordTokenizer(), k=k, seed=seed, limit=limit, workers=workers)


# -- selection ---------------------------------------------------------------------------


async def test_prefill_is_the_first_k_tokens():
    documents = docs("The quick brown fox jumps", source="prose")
    prefills, skipped = await select(documents, k=3)
    assert skipped == 0
    [p] = prefills
    assert p.text == "The quick brown"
    assert p.n_tokens == 3
    assert (p.doc_id, p.source) == ("prose:0", "prose")
    assert p.prefill_id == prefill_id("The quick brown")
    (p1,), _ = await select(documents, k=1)
    assert p1.text == "The"


async def test_identical_prefills_are_dropped():
    documents = docs("The cat sat on the mat", "The cat sat by the door", "A dog ran home")
    prefills, skipped = await select(documents, k=3)
    assert sorted(p.text for p in prefills) == ["A dog ran", "The cat sat"]
    assert skipped == 0  # a duplicate is not a skip (too short / not a prefix)


async def test_deterministic_for_a_seed_and_reordered_by_another():
    documents = many_docs(30)
    first, _ = await select(documents, seed=0)
    again, _ = await select(documents, seed=0)
    other, _ = await select(documents, seed=1)
    assert first == again
    assert [p.doc_id for p in first] != [p.doc_id for p in other]
    assert sorted(p.doc_id for p in first) == sorted(p.doc_id for p in other)  # no limit: every document


async def test_seeded_order_does_not_depend_on_the_worker_count():
    documents = many_docs(30)
    wide, _ = await select(documents, seed=3, limit=12, workers=8)
    narrow, _ = await select(documents, seed=3, limit=12, workers=1)
    assert wide == narrow


@pytest.mark.parametrize("limit", [1, 2, 5, 29, 30, 31, 100])
@pytest.mark.parametrize("workers", [1, 3, 8])
async def test_limit_is_respected_and_never_exceeded(limit, workers):
    prefills, _ = await select(many_docs(30), limit=limit, workers=workers)
    assert len(prefills) == min(limit, 30)
    assert len({p.text for p in prefills}) == len(prefills)


async def test_limit_keeps_looking_past_duplicates_and_short_documents():
    # 12 copies of one prefill, 5 too-short documents, then 4 distinct ones: limit 3 is still met.
    documents = docs(*(["same first three words"] * 12 + ["too short"] * 5 + [f"unique {i} here ok" for i in range(4)]))
    prefills, skipped = await select(documents, limit=3, workers=1)
    assert len(prefills) == 3
    assert len({p.text for p in prefills}) == 3


async def test_limit_larger_than_distinct_prefills_gives_every_distinct_prefill():
    documents = docs(*(["same first three words"] * 8 + ["other first three words"] * 8))
    prefills, _ = await select(documents, limit=5, workers=2)
    assert sorted(p.text for p in prefills) == ["other first three", "same first three"]


async def test_short_and_non_prefix_documents_are_skipped_and_counted():
    documents = docs(
        "one two",  # fewer than 3 tokens
        "a  b c d",  # the normalised "a b c" is not a literal prefix
        "x y z w",  # fine
        "lonely",  # fewer than 3 tokens
        "p\tq r s",  # the normalised "p q r" is not a literal prefix
    )
    prefills, skipped = await select(documents, NormalisingTokenizer(), k=3)
    assert [p.text for p in prefills] == ["x y z"]
    assert skipped == 4


async def test_every_prefill_is_a_literal_prefix_of_its_document():
    documents = many_docs(20) + docs("  leading spaces then words here", source="ws")
    prefills, _ = await select(documents, RegexTokenizer(), k=3)
    by_id = {d.doc_id: d for d in documents}
    assert prefills
    for p in prefills:
        assert by_id[p.doc_id].text.startswith(p.text)


async def test_empty_corpus_gives_nothing():
    assert await select([]) == ([], 0)


# -- prefill_id --------------------------------------------------------------------------


def test_prefill_id_is_stable():
    # pinned: a changed id would silently break resuming and comparing runs
    assert prefill_id("The quick brown") == "9bc94b608c3636f6"
    assert prefill_id("The quick brown") == prefill_id("The quick brown")
    assert prefill_id("The quick brown") != prefill_id("The quick brown ")
    assert re.fullmatch(r"[0-9a-f]{16}", prefill_id("é中"))


async def test_prefill_id_does_not_depend_on_seed_or_document():
    documents = docs("Same start here, then one", "Same start here, then two")
    (a,), _ = await select(documents[:1], seed=0)
    (b,), _ = await select(documents[1:], seed=7)
    assert a.prefill_id == b.prefill_id
    assert a.doc_id != b.doc_id


# -- the regex fallback ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "k", "expected"),
    [
        # pieces: "Hello" "," " world" "!" " It" "'s" " 42" "."
        ("Hello, world! It's 42.", 3, "Hello, world"),
        ("Hello, world! It's 42.", 4, "Hello, world!"),
        ("Hello, world! It's 42.", 6, "Hello, world! It's"),
        # pieces: "def" " f" "(" "x" "):" "\n   " " return" " x"
        ("def f(x):\n    return x", 5, "def f(x):"),
        ("def f(x):\n    return x", 7, "def f(x):\n    return"),
        # a run of spaces leaves its last space to the next word: "a" "  " " b"
        ("a   b", 3, "a   b"),
        ("Hi there", 3, None),
        ("", 1, None),
    ],
)
async def test_regex_fallback_hand_checked(text, k, expected):
    assert await RegexTokenizer().first_tokens(text, k) == expected


async def test_regex_fallback_only_reads_the_head_of_a_long_document():
    text = "word " * 100_000
    assert await RegexTokenizer().first_tokens(text, 3) == "word word word"


# -- tokenizer choice --------------------------------------------------------------------


def refuse_requests(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"unexpected request {request.method} {request.url}")


async def provider(dialect: str, model: str, base_url: str = "http://127.0.0.1:9/v1", handler=refuse_requests):
    return await connect(base_url, model, dialect=dialect, transport=httpx.MockTransport(handler))


async def test_vllm_target_uses_the_endpoint_tokenizer():
    target = await provider("vllm", "smollm2")
    try:
        tokenizer = tokenizer_for(target)
        assert isinstance(tokenizer, EndpointTokenizer)
        assert tokenizer.provider is target
    finally:
        await target.aclose()


async def test_openai_target_uses_tiktoken(monkeypatch):
    class FakeEncoding:
        def encode(self, text, disallowed_special=()):
            return [ord(c) for c in text]

        def decode(self, ids):
            return "".join(map(chr, ids))

    asked: list[str] = []

    def fake_encoding(model):
        asked.append(model)
        return FakeEncoding()

    # tiktoken itself would download its BPE file; the choice is what is under test here
    monkeypatch.setattr(prefills_module, "tiktoken_encoding", fake_encoding)
    for model in ("gpt-4o-mini", "davinci-002"):  # chat-only and echo-capable (tokenize=True) alike
        target = await provider("openai", model, "https://api.openai.com/v1")
        try:
            tokenizer = tokenizer_for(target)
            assert isinstance(tokenizer, TiktokenTokenizer)
            assert await tokenizer.first_tokens("abcdef", 4) == "abcd"
            assert await tokenizer.first_tokens("ab", 4) is None
        finally:
            await target.aclose()
    assert asked == ["gpt-4o-mini", "davinci-002"]


async def test_openai_target_without_tiktoken_falls_back_to_regex(monkeypatch):
    def no_encoding(model):
        raise CapabilityError(f"tiktoken does not know the tokenizer of {model!r}")

    monkeypatch.setattr(prefills_module, "tiktoken_encoding", no_encoding)
    target = await provider("openai", "gpt-4o")
    try:
        assert isinstance(tokenizer_for(target), RegexTokenizer)
    finally:
        await target.aclose()


async def test_openai_target_with_a_model_tiktoken_does_not_know_falls_back_to_regex():
    # real tiktoken: an unknown model name is a KeyError before any download
    target = await provider("openai", "my-private-finetune")
    try:
        assert isinstance(tokenizer_for(target), RegexTokenizer)
    finally:
        await target.aclose()


async def test_generic_target_without_a_tokenizer_falls_back_to_regex():
    target = await provider("generic", "whatever")
    try:
        assert isinstance(tokenizer_for(target), RegexTokenizer)
    finally:
        await target.aclose()


async def test_endpoint_tokenizer_tokenizes_without_special_tokens_and_detokenizes_k_ids():
    bodies: list[tuple[str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append((request.url.path, body))
        if request.url.path == "/tokenize":  # one token per character
            return httpx.Response(200, json={"tokens": [ord(c) for c in body["prompt"]], "count": len(body["prompt"])})
        if request.url.path == "/detokenize":
            return httpx.Response(200, json={"prompt": "".join(map(chr, body["tokens"]))})
        return refuse_requests(request)

    target = await provider("vllm", "m", handler=handler)
    try:
        tokenizer = tokenizer_for(target)
        assert await tokenizer.first_tokens("Hello", 3) == "Hel"
        assert await tokenizer.first_tokens("Hi", 3) is None
    finally:
        await target.aclose()
    tokenize_bodies = [b for path, b in bodies if path == "/tokenize"]
    assert all(b["add_special_tokens"] is False for b in tokenize_bodies)
    assert [b["tokens"] for path, b in bodies if path == "/detokenize"] == [[72, 101, 108]]  # "Hi" never detokenized
