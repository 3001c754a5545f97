"""Stage 1: prefills, the first k tokens of each document under the *target's* tokenizer.

Tokenizers, best first: the target endpoint's own (/tokenize on vLLM), tiktoken for OpenAI
models, and as a documented fallback a GPT-2-style pre-tokenizer regex (words, numbers and
punctuation runs with their leading space), which approximates a BPE token by a word piece.
Documents are visited in a seeded shuffled order, identical prefills are dropped, and the
selection stops at `limit`; a prefill must be a literal prefix of its document.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from blackbox_audit.pool import map_bounded
from blackbox_audit.records import Document, Prefill
from providers.errors import CapabilityError
from providers.openai import tiktoken_encoding
from providers.openai_compatible import OpenAICompatibleProvider

FALLBACK_PATTERN = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\w+| ?[^\s\w]+|\s+(?!\S)|\s+""")


class PrefillError(ValueError):
    """No usable prefill: the corpus and the prefill length cannot make one."""

    @classmethod
    def none_found(cls, n_documents: int, n_skipped: int, k: int, corpus: str) -> PrefillError:
        return cls(
            f"no prefill: {n_skipped} of the {n_documents} documents of {corpus!r} are shorter than {k} tokens or"
            " change when cut there; use longer documents or a smaller --prefill-tokens"
        )


class PrefillTokenizer(Protocol):
    name: str

    async def first_tokens(self, text: str, k: int) -> str | None:
        """The text of the first k tokens of `text`, or None when it has fewer than k."""


def _head(text: str, k: int) -> str:
    """Enough of the document to hold k tokens, without tokenizing whole books."""
    return text[: max(256, 64 * k)]


@dataclass
class EndpointTokenizer:
    provider: OpenAICompatibleProvider
    name: str = "endpoint"

    async def first_tokens(self, text: str, k: int) -> str | None:
        ids = await self.provider.tokenize(_head(text, k), add_special_tokens=False)
        if len(ids) < k:
            return None
        return await self.provider.detokenize(ids[:k])


@dataclass
class TiktokenTokenizer:
    encoding: object
    name: str = "tiktoken"

    async def first_tokens(self, text: str, k: int) -> str | None:
        ids = self.encoding.encode(_head(text, k), disallowed_special=())
        return self.encoding.decode(ids[:k]) if len(ids) >= k else None


@dataclass
class RegexTokenizer:
    """The fallback when the target exposes no tokenizer: word pieces, not real tokens."""

    name: str = "regex-fallback"

    async def first_tokens(self, text: str, k: int) -> str | None:
        pieces = FALLBACK_PATTERN.findall(_head(text, k))
        return "".join(pieces[:k]) if len(pieces) >= k else None


def tokenizer_for(target: OpenAICompatibleProvider) -> PrefillTokenizer:
    if target.capabilities.tokenize and target.dialect != "openai":
        return EndpointTokenizer(target)
    if target.dialect == "openai":
        try:
            return TiktokenTokenizer(tiktoken_encoding(target.model))
        except CapabilityError:
            pass
    return RegexTokenizer()


def prefill_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def select_prefills(
    documents: Sequence[Document],
    tokenizer: PrefillTokenizer,
    *,
    k: int,
    seed: int,
    limit: int | None,
    workers: int = 8,
    advance: Callable[[int], None] = lambda n: None,
) -> tuple[list[Prefill], int]:
    """(prefills, documents skipped as too short or not prefix-stable), deterministic for a seed."""
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    wanted = len(order) if limit is None else limit
    seen: set[str] = set()
    prefills: list[Prefill] = []
    skipped = 0
    position = 0
    while position < len(order) and len(prefills) < wanted:
        # Ask only for about as many documents as prefills still wanted (plus slack for duplicates).
        size = min(4 * workers, wanted - len(prefills) + 2)
        chunk = order[position : position + size]
        position += size
        texts = await map_bounded(
            [documents[i].text for i in chunk], lambda t: tokenizer.first_tokens(t, k), workers=workers
        )
        for i, text in zip(chunk, texts, strict=True):
            doc = documents[i]
            if text is None or not text.strip() or not doc.text.startswith(text):
                skipped += 1
                continue
            if text in seen or len(prefills) >= wanted:
                continue
            seen.add(text)
            prefills.append(
                Prefill(prefill_id=prefill_id(text), doc_id=doc.doc_id, source=doc.source, text=text, n_tokens=k)
            )
            advance(1)
    return prefills, skipped
