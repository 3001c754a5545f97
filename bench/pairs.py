"""The scoring job's (context, continuation) pairs, built deterministically from the
bundled corpus: context = the first CONTEXT_WORDS words of a document, continuation = the
text of the next CONTINUATION_WORDS words (at most CONTINUATION_MAX_CHARS characters),
which is about 40-60 tokens under SmolLM2's tokenizer. The continuation keeps its leading
whitespace (as lm-evaluation-harness expects); the context has none at its end."""

from __future__ import annotations

import re

from blackbox_audit.corpus import load_documents

CONTEXT_WORDS = 8
CONTINUATION_WORDS = 40
CONTINUATION_MAX_CHARS = 220
_WORD = re.compile(r"\S+")


def split_document(text: str) -> tuple[str, str] | None:
    """(context, continuation) from the start of `text`, or None when it is too short."""
    ends = [m.end() for m in _WORD.finditer(text, 0, 4096)]
    if len(ends) < CONTEXT_WORDS + 10:
        return None
    cut = ends[CONTEXT_WORDS - 1]
    stop = ends[min(len(ends), CONTEXT_WORDS + CONTINUATION_WORDS) - 1]
    while stop - cut > CONTINUATION_MAX_CHARS:
        stop = max(e for e in ends if e < stop)
    context, continuation = text[:cut], text[cut:stop]
    if not continuation.strip():
        return None
    return context, continuation


def build_pairs(n: int, corpus: str = "default") -> list[tuple[str, str]]:
    """`n` pairs from documents spread evenly over the corpus (prose and code), in doc-id order;
    for n larger than the corpus the documents repeat with a distinguishing context suffix."""
    documents = sorted(load_documents(corpus), key=lambda d: d.doc_id)
    usable = [p for p in (split_document(d.text) for d in documents) if p is not None]
    stride = max(1, len(usable) // max(1, n))
    picked = usable[::stride]
    out: list[tuple[str, str]] = []
    round_ = 0
    while len(out) < n:
        for context, continuation in picked:
            if len(out) == n:
                break
            out.append((context if round_ == 0 else f"[{round_}] {context}", continuation))
        round_ += 1
    return out
