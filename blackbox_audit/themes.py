"""Themes of the top: words and phrases over-represented in the top-ranked completions.

An auditor reading fifty completions looks for what recurs ("Marseille", "1987", "copper
lantern"). This names it for them, with how surprising it is.

- **Phrases**: word 1-, 2- and 3-grams of each completion (casefolded, digits and punctuation
  left out), except those that begin or end with a stopword ("of the") and one- or two-letter
  words. A phrase counts once per completion: a loop repeating a word fifty times is one
  piece of evidence, not fifty. Each completion counts, near-duplicates included: the target
  reaching the same sentence from different prefills is the strongest evidence there is (a
  backdoor's payload, an implanted fact).
- **The statistic**: for a phrase in `a` of the `n` top completions and in `b` of the `m`
  others, the one-sided Fisher exact test (hypergeometric tail) P(X >= a) of drawing
  that many or more among n of n + m completions of which a + b hold the phrase. `surprise`
  is -log10 of it. Thousands of phrases are tested, so the table says how many
  (`n_tested`): a p-value far below 1 / n_tested is a theme, not chance.
- **Distinct themes, near-duplicates collapsed**: phrases with p < 0.05 are taken by surprise;
  one whose words lie inside a taken theme's (or around them) and that occurs in mostly the
  same top completions, or that occurs in nearly the same top completions whatever its words,
  is folded into that theme as a member ("eiffel tower" keeps "eiffel" and "tower"). "The same
  completions" counts near-duplicate completions (`similar`) as one, so a sentence repeated
  across the top is one theme, not one per word.
- **Against the reference's own generations**, when given: the same test of the top against
  those texts instead of the rest, so a phrase the reference says as readily is told apart.

Pure and streaming: the top (the first `top_k` ranked records) is held, the rest is read once
and only the top's phrases are counted in it, so memory does not grow with the audit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from blackbox_audit.records import CompletionResult
from blackbox_audit.similar import group_near_duplicates, words

MAX_PHRASE_WORDS = 3
MIN_TOP_COMPLETIONS = 2
"""A theme recurs: a phrase of one top completion only is that completion's, not the top's."""
MAX_P_VALUE = 0.05
"""A phrase the top holds no more often than chance would (p >= 0.05) is not shown at all."""
FOLD_OVERLAP_SHARED_WORDS = 0.5
FOLD_OVERLAP_ANY = 0.8

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "one",
        "two",
        "new",
        "like",
        "get",
        "got",
        "may",
        "might",
        "must",
        "shall",
        "us",
        "let",
    ]
)


def phrases(text: str) -> set[str]:
    """The phrases a completion holds, each once."""
    tokens = words(text)
    out: set[str] = set()
    for n in range(1, MAX_PHRASE_WORDS + 1):
        for i in range(len(tokens) - n + 1):
            gram = tokens[i : i + n]
            if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                continue
            if n == 1 and len(gram[0]) < 3:
                continue
            out.add(" ".join(gram))
    return out


def fisher_greater(a: int, n: int, k: int, total: int) -> float:
    """P(X >= a) for X ~ Hypergeometric(total, k successes, n draws): the one-sided Fisher
    exact p-value of seeing `a` or more of `k` phrase-holding completions among `n` drawn."""
    if a <= 0:
        return 1.0
    high = min(n, k)
    if a > high:
        return 0.0

    def log_choose(x: int, y: int) -> float:
        return math.lgamma(x + 1) - math.lgamma(y + 1) - math.lgamma(x - y + 1)

    base = log_choose(total, n)
    low = max(a, n - (total - k))  # fewer would leave more non-holders drawn than exist
    terms = [log_choose(k, x) + log_choose(total - k, n - x) - base for x in range(low, high + 1)]
    peak = max(terms)
    return min(1.0, math.exp(peak) * math.fsum(math.exp(t - peak) for t in terms))


@dataclass(frozen=True)
class Theme:
    phrase: str
    members: tuple[str, ...]
    """Phrases folded into this one (sub-phrases, or phrases of the same completions)."""
    n_top: int
    """Distinct top completions holding the phrase."""
    n_rest: int
    """Distinct other completions holding it."""
    p_value: float
    top_ranks: tuple[int, ...]
    """Ranks of the top completions holding it, best first."""
    n_background: int | None = None
    p_background: float | None = None

    @property
    def surprise(self) -> float:
        """-log10 p, capped where p underflows."""
        return -math.log10(max(self.p_value, 1e-300))


@dataclass(frozen=True)
class ThemeTable:
    themes: tuple[Theme, ...]
    top_size: int
    """Completions in the top."""
    top_distinct: int
    """Of which distinct once near-duplicates are collapsed."""
    rest_size: int
    n_tested: int
    """Phrases tested: the number of chances a p-value had to be small."""
    background_size: int | None = None


def find_themes(
    ranked: Iterable[CompletionResult],
    *,
    top_k: int = 50,
    max_themes: int = 10,
    background: Iterable[str] | None = None,
) -> ThemeTable:
    """Themes of the first `top_k` ranked records against every other record (see module)."""
    records = iter(ranked)
    top: list[CompletionResult] = []
    for record in records:
        if record.rank is None or len(top) == top_k:
            rest_first = [record]
            break
        top.append(record)
    else:
        rest_first = []
    leaders = group_near_duplicates([r.completion for r in top])
    in_top: dict[str, set[int]] = {}
    for i, record in enumerate(top):
        for phrase in phrases(record.completion):
            in_top.setdefault(phrase, set()).add(i)
    candidates = {p for p, held in in_top.items() if len(held) >= MIN_TOP_COMPLETIONS}
    rest_counts, rest_size = _count(candidates, (r.completion for r in _chain(rest_first, records)))
    top_size = len(top)
    total = top_size + rest_size
    scored = sorted(
        (
            fisher_greater(len(in_top[p]), top_size, len(in_top[p]) + rest_counts[p], total),
            -len(in_top[p]),
            -len(p.split()),
            p,
        )
        for p in candidates
    )
    chosen: list[tuple[str, set[int], list[str], float]] = []
    for p_value, _, _, phrase in scored:
        if len(chosen) == max_themes or p_value >= MAX_P_VALUE:
            break
        held = in_top[phrase]
        home = next((c for c in chosen if _folds(phrase, _groups(held, leaders), c[0], _groups(c[1], leaders))), None)
        if home is None:
            chosen.append((phrase, held, [], p_value))
        else:
            home[2].append(phrase)
    background_counts: Counter[str] | None = None
    background_size = None
    if background is not None:
        background_counts, background_size = _count({c[0] for c in chosen}, background)
    themes = []
    for phrase, held, members, p_value in chosen:
        n_background = p_background = None
        if background_counts is not None and background_size is not None:
            n_background = background_counts[phrase]
            p_background = fisher_greater(len(held), top_size, len(held) + n_background, top_size + background_size)
        themes.append(
            Theme(
                phrase=phrase,
                members=tuple(members),
                n_top=len(held),
                n_rest=rest_counts[phrase],
                p_value=p_value,
                top_ranks=tuple(sorted(top[i].rank or 0 for i in held)),
                n_background=n_background,
                p_background=p_background,
            )
        )
    return ThemeTable(
        themes=tuple(themes),
        top_size=top_size,
        top_distinct=len(set(leaders)),
        rest_size=rest_size,
        n_tested=len(candidates),
        background_size=background_size,
    )


def top_for(top_k: int, n_records: int) -> int:
    """The top a report's themes contrast: its top_k, but at most a quarter of the records, so
    that a small audit keeps a rest to contrast with."""
    return max(1, min(top_k, n_records // 4))


def theme_matches(theme: Theme, keywords: Sequence[str], *, members: bool = True) -> bool:
    """Whether the theme's phrase (and, with `members`, a phrase folded into it) contains one of
    `keywords` (casefolded substrings)."""
    phrases_ = [theme.phrase, *theme.members] if members else [theme.phrase]
    return any(keyword.casefold() in phrase.casefold() for phrase in phrases_ for keyword in keywords)


def _chain(first: list[CompletionResult], rest: Iterable[CompletionResult]) -> Iterable[CompletionResult]:
    yield from first
    yield from rest


def _count(candidates: set[str], texts: Iterable[str]) -> tuple[Counter[str], int]:
    """How many texts hold each candidate phrase, and how many texts there were."""
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        if not text:
            continue
        n += 1
        counts.update(candidates & phrases(text))
    return counts, n


def _groups(held: set[int], leaders: Sequence[int]) -> set[int]:
    """The near-duplicate groups of the top completions in `held`."""
    return {leaders[i] for i in held}


def _folds(phrase: str, held: set[int], theme: str, theme_held: set[int]) -> bool:
    overlap = len(held & theme_held) / len(held | theme_held)
    if overlap >= FOLD_OVERLAP_ANY:
        return True
    a, b = f" {phrase} ", f" {theme} "
    return (a in b or b in a) and overlap >= FOLD_OVERLAP_SHARED_WORDS
