"""The audit's records on disk and only their sort keys in memory, so an audit's memory stays
flat in the number of completions: ranking sorts the keys, then copies each record's line
from the spool into results.jsonl in rank order, writing its rank into the line."""

from __future__ import annotations

import json
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import get_args, overload

from blackbox_audit.gap import parse_result
from blackbox_audit.ranking import RANK_AVERAGE_PARTS, averaged_ranks, check_score, demotions, score_values
from blackbox_audit.records import CompletionResult, Framing, ScoreName
from blackbox_audit.report import results_jsonl_line

_UNRANKED_SUFFIX = '"rank": null}'
FRAMINGS: tuple[str, ...] = get_args(Framing)


def _with_rank(line: str, rank: int) -> str:
    """`rank` is the record's last field, so a spooled line (rank null) ends in a fixed suffix."""
    if not line.endswith(_UNRANKED_SUFFIX):
        raise ValueError(f"not a spooled record line: ...{line[-40:]!r}")
    return f'{line[: -len(_UNRANKED_SUFFIX)]}"rank": {rank}}}'


class RankedRecords(Sequence[CompletionResult]):
    """The records of a results.jsonl, parsed when asked for; only line offsets stay in memory.

    `keep` holds whatever must outlive the file's readers (a temporary directory)."""

    def __init__(self, path: Path, offsets: array, keep: object = None):
        self.path = path
        self._offsets = offsets  # n + 1 entries: line i is bytes [offsets[i], offsets[i + 1])
        self._keep = keep

    @classmethod
    def of_file(cls, path: Path) -> RankedRecords:
        """An existing results.jsonl, its line offsets found in one pass."""
        offsets = array("q", [0])
        with Path(path).open("rb") as file:
            for line in file:
                offsets.append(offsets[-1] + len(line))
        return cls(Path(path), offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def moved_to(self, path: Path) -> RankedRecords:
        """The same records, once their file has moved (the output folder swapped in)."""
        return RankedRecords(path, self._offsets, self._keep)

    @overload
    def __getitem__(self, index: int) -> CompletionResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[CompletionResult]: ...

    def __getitem__(self, index: int | slice) -> CompletionResult | list[CompletionResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        with self.path.open("rb") as file:
            file.seek(self._offsets[index])
            return parse_result(file.read(self._offsets[index + 1] - self._offsets[index]))

    def __iter__(self) -> Iterator[CompletionResult]:
        with self.path.open("rb") as file:
            for _ in range(len(self)):
                yield parse_result(file.readline())


class RecordSpool:
    """Append measured records (unranked); `write_ranked` writes them ranked as results.jsonl.

    Per record it keeps the line's place in the spool file and what ranking needs (score,
    demotion, tie-breakers): tens of bytes, against tens of kilobytes for the record."""

    def __init__(
        self, directory: Path, score: ScoreName, degeneracy_threshold: float | None, *, demote_all_loops: bool = False
    ):
        check_score(score)
        directory.mkdir(parents=True, exist_ok=True)
        # Unlinked at once (POSIX): even a killed run leaves nothing behind.
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (open for the spool's life; close() ends it)
        self.score = score
        self.degeneracy_threshold = degeneracy_threshold
        self.demote_all_loops = demote_all_loops
        self._offsets = array("q")
        self._end = 0
        self._degenerate = bytearray()
        self._demoted: list[bool] | None = None  # `demoted`, kept until the next `add`
        # What rank_average is drawn from; its collapsed_window_gap is also the loop floor's.
        self._parts = {name: array("d") for name in RANK_AVERAGE_PARTS}
        self._collapsed = self._parts["collapsed_window_gap"]
        self._values = array("d")  # the score's value, for a score that is a field of Gaps
        # Tie-breakers (prefill_id, framing) packed into buffers: a small object per record,
        # allocated between a chunk's large temporaries, would pin the allocator's arenas.
        self._prefill_ids = bytearray()
        self._prefill_id_ends = array("q")
        self._framings = bytearray()
        self._scored = bytearray()
        self.alignment: Counter[str] = Counter()
        self.same_tokens_false = 0
        self.beyond_null = 0

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, result: CompletionResult) -> None:
        self._demoted = None
        (value,) = score_values([result], self.score)  # refuses a non-finite gap before anything is written
        unranked = result if result.rank is None else result.model_copy(update={"rank": None})
        data = results_jsonl_line(unranked).encode() + b"\n"
        self._offsets.append(self._end)
        self._file.write(data)
        self._end += len(data)
        self._scored.append(value is not None)
        self._degenerate.append(
            self.degeneracy_threshold is not None and result.degeneracy >= self.degeneracy_threshold
        )
        for name, column in self._parts.items():
            column.append(getattr(result.gaps, name) if result.gaps is not None else 0.0)
        self._values.append(value if value is not None else 0.0)
        self._prefill_ids += result.prefill_id.encode()
        self._prefill_id_ends.append(len(self._prefill_ids))
        self._framings.append(FRAMINGS.index(result.framing))
        self.alignment[result.alignment] += 1
        self.same_tokens_false += result.same_tokens is False
        self.beyond_null += result.null is not None and result.null.beyond_max

    def _tie(self, i: int) -> tuple[str, str]:
        start = self._prefill_id_ends[i - 1] if i else 0
        return self._prefill_ids[start : self._prefill_id_ends[i]].decode(), FRAMINGS[self._framings[i]]

    @property
    def degenerate(self) -> int:
        return sum(self._degenerate)

    def demoted(self) -> list[bool]:
        """Per record, whether it ranks after the rest (`ranking.demoted_flags`, from the kept
        numbers; the loops' floors read the completions back from the spool). Kept once
        computed, so that it still answers after `close` (the manifest counts it)."""
        if self._demoted is None:
            self._demoted = demotions(
                [bool(flag) for flag in self._degenerate],
                [self._collapsed[i] if self._scored[i] else None for i in range(len(self))],
                self._completion,
                all_loops=self.demote_all_loops,
            )
        return self._demoted

    def _completion(self, index: int) -> str:
        self._file.flush()
        self._file.seek(self._offsets[index])
        completion: str = json.loads(self._file.readline())["completion"]
        self._file.seek(self._end)  # where the next `add` writes
        return completion

    def _order(self) -> list[int]:
        """Indices in rank order: scored by (demoted, -score, ties), then unscored by ties."""
        n = len(self)
        demoted = self.demoted()
        values: Sequence[float | None] = self._values
        if self.score == "rank_average":
            values = averaged_ranks(
                [[column[i] if self._scored[i] else None for i in range(n)] for column in self._parts.values()]
            )
        scored = sorted(
            (i for i in range(n) if self._scored[i]), key=lambda i: (demoted[i], -(values[i] or 0.0), self._tie(i))
        )
        unscored = sorted((i for i in range(n) if not self._scored[i]), key=self._tie)
        return scored + unscored

    def write_ranked(self, path: Path, *, keep: object = None) -> RankedRecords:
        """results.jsonl at `path`, in a folder private to the audit (the output set's staging
        folder, flushed and swapped in as a whole); `keep` as in `RankedRecords`."""
        self._file.flush()
        offsets = array("q", [0])
        try:
            with path.open("wb") as out:
                for position, i in enumerate(self._order(), start=1):
                    self._file.seek(self._offsets[i])
                    line = self._file.readline().decode().rstrip("\n")
                    if self._scored[i]:
                        line = _with_rank(line, position)
                    data = line.encode() + b"\n"
                    out.write(data)
                    offsets.append(offsets[-1] + len(data))
        finally:
            self._file.seek(self._end)  # where the next `add` writes
        return RankedRecords(path, offsets, keep)

    def close(self) -> None:
        self._file.close()
