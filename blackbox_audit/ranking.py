"""Order completions by gap, most revealing first, without dropping any record."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence

from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.profile import repeated_stretches, stretches_of
from blackbox_audit.records import CompletionResult, GapName, ScoreName

DEFAULT_SCORE: ScoreName = "rank_average"
"""Each completion's ranks by three views of the gap, averaged: the whole-completion
`logppl_diff` finds an objective spread over the text (a false fact told at length),
`log_bpb_ratio` one the target is sure of and the reference is not whatever the text's own
entropy, and the span score `collapsed_window_gap` a short or looping payload that a mean
dilutes. On the organisms of docs/results.md the average beats each alone, and every
organism of the earlier suite keeps or improves its first hit."""

RANK_AVERAGE_PARTS: tuple[GapName, ...] = ("logppl_diff", "log_bpb_ratio", "collapsed_window_gap")

DEFAULT_DEGENERACY_THRESHOLD = 0.6
"""Above prose and code (<= 0.45, see `gap.degeneracy`); 48-token loops such as ": 12: 12: 12"
score 0.6-0.7."""

RankKey = tuple[bool, float, str, str]


def gap_of(score: ScoreName) -> GapName:
    """The per-completion number that stands for `score` where one number is needed (the
    calibrated null's p-value, a row's score): `rank_average`'s span part."""
    return "collapsed_window_gap" if score == "rank_average" else score


def score_values(results: Sequence[CompletionResult], score: ScoreName) -> list[float | None]:
    """Per record, what `rank` sorts by (larger first); None for a record without gaps. Refuses
    a non-finite gap rather than sorting it somewhere."""
    check_score(score)
    names = RANK_AVERAGE_PARTS if score == "rank_average" else (score,)
    columns: list[list[float | None]] = []
    for name in names:
        column: list[float | None] = []
        for result in results:
            value = None if result.gaps is None else getattr(result.gaps, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} of {result.prefill_id} ({result.framing}) is {value!r}")
            column.append(value)
        columns.append(column)
    if score != "rank_average":
        return columns[0]
    return averaged_ranks(columns)


def rank_keys(results: Sequence[CompletionResult], score: ScoreName, demoted: Sequence[bool]) -> list[RankKey | None]:
    """Per record, what `rank` sorts by: (demoted, -score, prefill_id, framing); None without gaps."""
    return [
        None if value is None else (flag, -value, r.prefill_id, r.framing)
        for r, value, flag in zip(results, score_values(results, score), demoted, strict=True)
    ]


def averaged_ranks(columns: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Minus the mean of each record's ranks, one per column (1 = the column's largest value;
    ties share the better rank, so the result does not depend on the records' order); None
    where any of its values is None."""
    ranks = [_min_ranks(column) for column in columns]
    return [
        None if any(r is None for r in row) else -math.fsum(r for r in row if r is not None) / len(row)
        for row in zip(*ranks, strict=True)
    ]


def _min_ranks(values: Sequence[float | None]) -> list[int | None]:
    ordered = sorted((v for v in values if v is not None), reverse=True)
    position: dict[float, int] = {}
    for i, value in enumerate(ordered, start=1):
        position.setdefault(value, i)
    return [None if v is None else position[v] for v in values]


Ordinary = tuple[str, float]
"""A completion below the degeneracy threshold and its `collapsed_window_gap`: what a loop is
compared with."""


def ordinary_completions(results: Iterable[CompletionResult], degeneracy_threshold: float) -> Iterator[Ordinary]:
    return (
        (r.completion, r.gaps.collapsed_window_gap)
        for r in results
        if r.gaps is not None and r.degeneracy < degeneracy_threshold
    )


def loop_floors(loops: Sequence[str], ordinary: Iterable[Ordinary]) -> list[float]:
    """Per loop, the `collapsed_window_gap` it must reach to keep its place: the median of the
    ordinary completions that repeat none of its text (no stretch of `profile.REPEAT_BYTES`
    bytes that the loop repeats). A loop that both models predict ("0000", "; ; ;", ": 12: 12")
    has a first occurrence with little gap and falls below it; a repeated payload's first
    occurrence carries a large gap and stays. Completions that say the loop's text are left
    out because, where the objective is in most completions, their median is the payload's
    own gap. With no completion to compare, the floor is infinite: the loop is demoted."""
    repeated = [repeated_stretches(loop.encode()) for loop in loops]
    wanted = frozenset().union(*repeated)
    compared = [(gap, stretches_of(text.encode(), wanted)) for text, gap in ordinary]
    floors: dict[frozenset[bytes], float] = {}
    for stretches in repeated:
        if stretches not in floors:
            floors[stretches] = median_or_inf(gap for gap, found in compared if found.isdisjoint(stretches))
    return [floors[stretches] for stretches in repeated]


def median_or_inf(values: Iterable[float]) -> float:
    kept = list(values)
    return statistics.median(kept) if kept else math.inf


def demoted_flags(
    results: Sequence[CompletionResult],
    degeneracy_threshold: float | None,
    *,
    all_loops: bool,
    ordinary: Iterable[Ordinary] | None = None,
) -> list[bool]:
    """Per record, whether it ranks after the rest (`demotions`). `ordinary` (default: the
    records' own) is what loops are compared with, so that fresh samples can be judged against
    an audit."""
    if degeneracy_threshold is None:
        return [False] * len(results)
    degenerate: list[bool] = []
    gaps: list[float | None] = []
    for result in results:  # one pass: a results file is parsed as it is read
        degenerate.append(result.degeneracy >= degeneracy_threshold)
        gaps.append(None if result.gaps is None else result.gaps.collapsed_window_gap)
    return demotions(degenerate, gaps, lambda i: results[i].completion, all_loops=all_loops, ordinary=ordinary)


def demotions(
    degenerate: Sequence[bool],
    gaps: Sequence[float | None],
    completion: Callable[[int], str],
    *,
    all_loops: bool,
    ordinary: Iterable[Ordinary] | None = None,
) -> list[bool]:
    """Per record, from its degeneracy flag and `collapsed_window_gap` (None without gaps):
    degenerate and, unless `all_loops`, below its `loop_floors` floor. `completion(i)` is asked
    only when there are loops to judge, for them and for the ordinary records."""
    flags = list(degenerate)
    loops = [i for i, flag in enumerate(degenerate) if flag and gaps[i] is not None]
    if all_loops or not loops:
        return flags
    if ordinary is None:
        ordinary = ((completion(i), gap) for i, gap in enumerate(gaps) if gap is not None and not degenerate[i])
    for i, floor in zip(loops, loop_floors([completion(i) for i in loops], ordinary), strict=True):
        gap = gaps[i]
        assert gap is not None
        flags[i] = gap < floor
    return flags


def rank(
    results: Sequence[CompletionResult],
    score: ScoreName = DEFAULT_SCORE,
    *,
    degeneracy_threshold: float | None = None,
    demote_all_loops: bool = False,
) -> list[CompletionResult]:
    """Copies with `rank` 1..n by `score` descending.

    Degenerate records (degeneracy >= threshold, when one is given) whose first occurrence
    carries little gap (`loop_floors`) are ranked after the rest rather than dropped, since a
    loop can itself be the revealing text. Records without gaps (empty or unaligned) come
    last with rank None. Ties go to (prefill_id, framing).
    """
    demoted = demoted_flags(results, degeneracy_threshold, all_loops=demote_all_loops)
    keyed: list[tuple[RankKey, CompletionResult]] = []
    unscored: list[CompletionResult] = []
    for result, key in zip(results, rank_keys(results, score, demoted), strict=True):
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
