"""An audit's records as an agent reads them: orderings by any score, search, one record in
full with its per-token gaps. Typed views over `RankedRecords`; nothing here sends a request.

A record's `id` is its line number in results.jsonl (1-based), stable for the folder whatever
ordering is asked for; under the audit's own score it equals the record's rank.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from blackbox_audit.gap import token_gaps
from blackbox_audit.ranking import check_score, demoted_flags, gap_of, ordinary_completions, rank_keys
from blackbox_audit.records import CompletionResult, Gaps, ScoreName, SideStats
from providers.records import Record

MAX_TEXT_CHARS = 2000
"""A completion is ~100 tokens; a runaway one is cut for the agent's context (show_completion
gives it whole)."""


class CompletionRow(Record):
    id: int | None
    """Line number in results.jsonl; None for a completion made after the audit (sample, score_text)."""
    rank: int | None
    """Position under the score asked for (degenerate ones after the rest, gapless ones unranked)."""
    score: float | None
    gaps: Gaps | None
    degeneracy: float
    demoted: bool
    prefill: str
    completion: str
    source: str
    finish_reason: str | None
    alignment: str


class TokenRow(Record):
    text: str
    target_logprob: float
    reference_logprob: float
    gap: float
    reference_tokens: tuple[tuple[str, float], ...]


class CompletionDetail(Record):
    row: CompletionRow
    target: SideStats | None
    reference: SideStats | None
    alignment_detail: str
    tokens: tuple[TokenRow, ...] | None
    """Per target token, both sides and the gap (reference NLL minus target NLL, nats); None
    when a side's token texts do not spell the completion (then see the raw lists)."""
    target_tokens: tuple[tuple[str, float], ...]
    reference_tokens: tuple[tuple[str, float], ...]


class Browser:
    """Orderings are computed once per score and kept as record indices (tens of bytes each)."""

    def __init__(
        self, records: Sequence[CompletionResult], degeneracy_threshold: float | None, *, demote_all_loops: bool = False
    ):
        self.records = records
        self.degeneracy_threshold = degeneracy_threshold
        self.demote_all_loops = demote_all_loops
        self.ordinary = (
            [] if degeneracy_threshold is None else list(ordinary_completions(records, degeneracy_threshold))
        )
        """What a loop, here or among fresh samples, is compared with (`ranking.demoted_flags`)."""
        self.demoted = demoted_flags(records, degeneracy_threshold, all_loops=demote_all_loops, ordinary=self.ordinary)
        self._orders: dict[str, list[int]] = {}
        self._positions: dict[str, array] = {}
        self._demoted: dict[int, bool] = {}

    def order(self, score: ScoreName) -> list[int]:
        """Record indices, ranked ones first by `score`, as `ranking.rank` orders them."""
        check_score(score)
        if score not in self._orders:
            keyed, unscored = [], []
            for i, key in enumerate(rank_keys(self.records, score, self.demoted)):
                if key is None:
                    unscored.append(i)
                else:
                    keyed.append((key, i))
                    self._demoted[i] = key[0]
            keyed.sort()
            order = [i for _, i in keyed] + unscored
            positions = array("l", bytes(len(order) * array("l").itemsize))
            for position, i in enumerate(order):
                positions[i] = position
            self._orders[score], self._positions[score] = order, positions
        return self._orders[score]

    def n_ranked(self, score: ScoreName) -> int:
        self.order(score)
        return len(self._demoted)

    def top(self, score: ScoreName, k: int, offset: int = 0) -> list[CompletionRow]:
        order = self.order(score)
        n_ranked = self.n_ranked(score)
        return [
            self.row(i, score, position + 1 if position < n_ranked else None)
            for position, i in enumerate(order[offset : offset + k], start=offset)
        ]

    def search(self, query: str, score: ScoreName, k: int) -> tuple[int, list[CompletionRow]]:
        """(number of records whose prefill + completion contain `query`, casefolded; the first k by score)."""
        needle = query.casefold()
        if not needle.strip():
            raise ValueError("give a non-empty query")
        self.order(score)
        positions = self._positions[score]
        found = [i for i, r in enumerate(self.records) if needle in (r.prefill + r.completion).casefold()]
        found.sort(key=positions.__getitem__)
        n_ranked = self.n_ranked(score)
        rows = [self.row(i, score, positions[i] + 1 if positions[i] < n_ranked else None) for i in found[:k]]
        return len(found), rows

    def row(self, index: int, score: ScoreName, rank: int | None) -> CompletionRow:
        return completion_row(self.records[index], score, rank, self._demoted.get(index, False), index + 1)

    def detail(self, record_id: int, score: ScoreName) -> CompletionDetail:
        if not 1 <= record_id <= len(self.records):
            raise ValueError(f"no record {record_id}: ids run from 1 to {len(self.records)}")
        self.order(score)
        index = record_id - 1
        position = self._positions[score][index]
        rank = position + 1 if position < self.n_ranked(score) else None
        return completion_detail(self.records[index], self.row(index, score, rank), full=True)


def completion_row(
    record: CompletionResult,
    score: ScoreName,
    rank: int | None,
    demoted: bool,
    record_id: int | None,
    *,
    full: bool = False,
) -> CompletionRow:
    text = (
        record.completion
        if full or len(record.completion) <= MAX_TEXT_CHARS
        else record.completion[:MAX_TEXT_CHARS] + "…"
    )
    return CompletionRow(
        id=record_id,
        rank=rank,
        score=None if record.gaps is None else getattr(record.gaps, gap_of(score)),
        gaps=record.gaps,
        degeneracy=record.degeneracy,
        demoted=demoted,
        prefill=record.prefill,
        completion=text,
        source=record.source,
        finish_reason=record.finish_reason,
        alignment=record.alignment,
    )


def completion_detail(record: CompletionResult, row: CompletionRow, *, full: bool = False) -> CompletionDetail:
    if full:
        row = row.model_copy(update={"completion": record.completion})
    gaps = token_gaps(
        record.completion,
        record.target_tokens,
        record.reference_tokens,
        reference_extra_chars=record.reference_extra_chars,
    )
    return CompletionDetail(
        row=row,
        target=record.target,
        reference=record.reference,
        alignment_detail=record.alignment_detail,
        tokens=None
        if gaps is None
        else tuple(
            TokenRow(
                text=g.text,
                target_logprob=g.target_logprob,
                reference_logprob=g.reference_logprob,
                gap=g.gap,
                reference_tokens=tuple((t.text, t.logprob) for t in g.reference_tokens),
            )
            for g in gaps
        ),
        target_tokens=tuple((t.text, t.logprob) for t in record.target_tokens),
        reference_tokens=tuple((t.text, t.logprob) for t in record.reference_tokens),
    )
