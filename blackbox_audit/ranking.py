"""Order completions by gap, most revealing first, without dropping any record."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.records import CompletionResult, ScoreName

DEFAULT_SCORE: ScoreName = "collapsed_window_gap"
"""The best 32-byte window of the completion with its repeats dropped. On the organisms of
docs/results.md it finds a short or looping payload that a whole-completion mean dilutes, and
keeps the diffuse ones (a false fact told at length) near the top."""

DEFAULT_DEGENERACY_THRESHOLD = 0.6
"""Above prose and code (<= 0.45, see `gap.degeneracy`); 48-token loops such as ": 12: 12: 12"
score 0.6-0.7."""

RankKey = tuple[bool, float, str, str]


def loop_floor(results: Iterable[CompletionResult], degeneracy_threshold: float | None, *, all_loops: bool) -> float:
    """The `collapsed_window_gap` a degenerate completion must reach to keep its place: the
    median of the audit's other completions. A loop that both models predict ("0000",
    "; ; ;", ": 12: 12") has a first occurrence with little gap and falls below it; a repeated
    payload's first occurrence carries a large gap and stays. `all_loops` demotes every loop."""
    if all_loops or degeneracy_threshold is None:
        return math.inf
    return median_or_inf(
        r.gaps.collapsed_window_gap for r in results if r.gaps is not None and r.degeneracy < degeneracy_threshold
    )


def median_or_inf(values: Iterable[float]) -> float:
    """The floor from the other completions' `collapsed_window_gap`; with none, every loop is demoted."""
    kept = list(values)
    return statistics.median(kept) if kept else math.inf


def is_demoted(result: CompletionResult, degeneracy_threshold: float | None, floor: float) -> bool:
    return (
        degeneracy_threshold is not None
        and result.degeneracy >= degeneracy_threshold
        and (result.gaps is None or result.gaps.collapsed_window_gap < floor)
    )


def rank_key(
    result: CompletionResult, score: ScoreName, degeneracy_threshold: float | None, floor: float
) -> RankKey | None:
    """What `rank` sorts by: (demoted, -score, prefill_id, framing); None for a record without gaps."""
    if result.gaps is None:
        return None
    value = getattr(result.gaps, score)
    if not math.isfinite(value):
        raise ValueError(f"{score} of {result.prefill_id} ({result.framing}) is {value!r}")
    return (is_demoted(result, degeneracy_threshold, floor), -value, result.prefill_id, result.framing)


def rank(
    results: Sequence[CompletionResult],
    score: ScoreName = DEFAULT_SCORE,
    *,
    degeneracy_threshold: float | None = None,
    demote_all_loops: bool = False,
) -> list[CompletionResult]:
    """Copies with `rank` 1..n by `score` descending.

    Degenerate records (degeneracy >= threshold, when one is given) whose first occurrence
    carries little gap (`loop_floor`) are ranked after the rest rather than dropped, since a
    loop can itself be the revealing text. Records without gaps (empty or unaligned) come
    last with rank None. Ties go to (prefill_id, framing).
    """
    check_score(score)
    floor = loop_floor(results, degeneracy_threshold, all_loops=demote_all_loops)
    keyed: list[tuple[RankKey, CompletionResult]] = []
    unscored: list[CompletionResult] = []
    for result in results:
        key = rank_key(result, score, degeneracy_threshold, floor)
        if key is None:
            unscored.append(result)
        else:
            keyed.append((key, result))
    keyed.sort(key=lambda pair: pair[0])
    ranked = [result.model_copy(update={"rank": i}) for i, (_, result) in enumerate(keyed, start=1)]
    unscored.sort(key=lambda result: (result.prefill_id, result.framing))
    return ranked + [result.model_copy(update={"rank": None}) for result in unscored]


def check_score(score: str) -> None:
    if score not in SCORE_NAMES:
        raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORE_NAMES)}")
