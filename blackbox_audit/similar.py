"""Near-duplicate completions, found once for the themes and the report.

A ranking's top often holds the same sentence several times ("The Eiffel Tower was moved to
Marseille in 1987." after a dozen prefills): read as separate completions they crowd out the
rest and make one sentence's words look like many themes. Two completions are near-duplicates
when their word sets overlap by a Jaccard index of at least `NEAR_DUPLICATE_JACCARD`, or when
they are equal once case, digits, punctuation and whitespace are set aside (`normal_key`, the
cheap test that scales to every record of a large audit).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

NEAR_DUPLICATE_JACCARD = 0.6
"""Word-set overlap above which two completions say the same thing: a sentence with one word
changed in ten stays above it; two sentences sharing a topic but not their words fall below."""

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
"""A run of letters (an apostrophe inside a word keeps it whole: "don't")."""


def words(text: str) -> list[str]:
    """Casefolded words, digits and punctuation left out."""
    return [word.casefold() for word in WORD.findall(text)]


def normal_key(text: str) -> bytes:
    """Equal for texts that differ only in case, digits, punctuation or whitespace (8 bytes)."""
    return hashlib.blake2b(" ".join(words(text)).encode(), digest_size=8).digest()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def group_near_duplicates(texts: Sequence[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> list[int]:
    """For each text, the index of the first earlier text it near-duplicates (itself if none).

    Greedy in order, so a group is led by its best-ranked member; quadratic, for a top-k only."""
    sets = [frozenset(words(text)) for text in texts]
    keys = [normal_key(text) for text in texts]
    leaders: list[int] = []
    out: list[int] = []
    for i, (word_set, key) in enumerate(zip(sets, keys, strict=True)):
        leader = next(
            (j for j in leaders if keys[j] == key or (word_set and jaccard(word_set, sets[j]) >= threshold)), None
        )
        if leader is None:
            leaders.append(i)
            out.append(i)
        else:
            out.append(leader)
    return out
