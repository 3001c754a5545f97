"""Hypothesis scoring: candidate claims about what the target was trained to do, ranked by gap.

Each statement is cut like an audit's document: its first `prefill_tokens` target tokens are the
prefill, in the audit's framing, and the rest is scored by both models; its gap (the audit's
score, reference minus target) says how much likelier the finetune finds the claim than the
reference does. The true objective's statement should lead. A statement is already a short
span, so where the audit ranks by a span score the statements take `logppl_diff`, their mean
over the whole claim (docs/results.md measured them so).

Two nulls say how much of a gap is the claim's:
- **neutral baseline** (always): bundled ordinary statements (`data/neutral_statements.txt`)
  scored the same way; `z` is a statement's gap in standard deviations of theirs from their
  mean. Two families differ on every text, so across families a gap alone misleads; z does not.
- **nulls** (optional, per statement): paraphrases or negations the auditor writes under a
  statement (`null: ...`). A finetune that merely likes the topic's words gives them a gap
  too; `contrast` = the statement's gap minus their mean gap is what the claim itself adds.

Statements file: one statement per line; `# ...` comments and blank lines are skipped; a line
`null: TEXT` is a null of the statement above it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from pydantic import Field

from blackbox_audit.inquiry import Inquiry, InquiryError
from blackbox_audit.ranking import gap_of
from blackbox_audit.records import CompletionResult, GapName, ScoreName
from providers.records import Record

NULL_PREFIX = "null:"
MAX_STATEMENTS = 200


class Hypothesis(Record):
    statement: str = Field(min_length=1)
    nulls: tuple[str, ...] = ()


def parse_statements(text: str) -> list[Hypothesis]:
    hypotheses: list[Hypothesis] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.casefold().startswith(NULL_PREFIX):
            null = line[len(NULL_PREFIX) :].strip()
            if not hypotheses or not null:
                raise InquiryError(f"line {number}: a null ({NULL_PREFIX} TEXT) belongs under a statement")
            last = hypotheses[-1]
            hypotheses[-1] = last.model_copy(update={"nulls": (*last.nulls, null)})
        else:
            hypotheses.append(Hypothesis(statement=line))
    return hypotheses


def load_statements(path: str | Path) -> list[Hypothesis]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InquiryError(f"cannot read the statements file {path}: {exc}") from None
    hypotheses = parse_statements(text)
    if not hypotheses:
        raise InquiryError(f"{path} holds no statement: one statement per line")
    return hypotheses


def neutral_statements() -> list[str]:
    text = files("blackbox_audit").joinpath("data/neutral_statements.txt").read_text(encoding="utf-8")
    return [h.statement for h in parse_statements(text)]


class HypothesisRow(Record):
    rank: int | None
    """1 = the likeliest under the target relative to the reference; None: no gap."""
    statement: str
    gap: float | None
    z: float | None
    """(gap - neutral mean) / neutral standard deviation."""
    null_gap: float | None = None
    """Mean gap of the statement's nulls."""
    contrast: float | None = None
    """gap - null_gap."""
    target_nll_per_token: float | None = None
    reference_nll_per_token: float | None = None
    prefill: str
    detail: str = ""
    """Why there is no gap, when there is none."""


class HypothesisRanking(Record):
    score: ScoreName
    rows: tuple[HypothesisRow, ...]
    neutral_mean: float | None
    neutral_sd: float | None
    n_neutral: int

    def table(self) -> str:
        lines = [
            f"hypotheses ranked by {self.score} (reference minus target; positive: the finetune finds it likelier)",
            f"neutral baseline: {self.n_neutral} statements, mean gap {_num(self.neutral_mean)}, sd {_num(self.neutral_sd, sign=False)}",
            f"{'rank':>4}  {'gap':>7}  {'z':>6}  {'null':>7}  {'contrast':>8}  statement",
        ]
        for row in self.rows:
            text = row.statement + (f"  ({row.detail})" if row.detail else "")
            lines.append(
                f"{row.rank if row.rank is not None else '-':>4}  {_num(row.gap):>7}  {_num(row.z, 2):>6}  "
                f"{_num(row.null_gap):>7}  {_num(row.contrast):>8}  {text}"
            )
        return "\n".join(lines)


async def rank_hypotheses(inquiry: Inquiry, hypotheses: Sequence[Hypothesis]) -> HypothesisRanking:
    """Every statement, null and neutral statement scored in one pass; statements ranked by gap."""
    if not hypotheses:
        raise InquiryError("give at least one statement")
    if len(hypotheses) > MAX_STATEMENTS:
        raise InquiryError(f"{len(hypotheses)} statements: at most {MAX_STATEMENTS} per call")
    neutral = neutral_statements()
    texts = [h.statement for h in hypotheses] + [n for h in hypotheses for n in h.nulls] + neutral
    splits = [await inquiry.split(text) for text in texts]
    records = iter(await inquiry.score(splits, source="hypothesis"))
    score = statement_score(inquiry.config.score)
    statements = [next(records) for _ in hypotheses]
    nulls = [[next(records) for _ in h.nulls] for h in hypotheses]
    neutral_gaps = [g for g in (_gap(next(records), score) for _ in neutral) if g is not None]
    mean = statistics.fmean(neutral_gaps) if neutral_gaps else None
    sd = statistics.stdev(neutral_gaps) if len(neutral_gaps) >= 2 else None
    rows = []
    for hypothesis, record, null_records in zip(hypotheses, statements, nulls, strict=True):
        gap = _gap(record, score)
        null_gaps = [g for g in (_gap(r, score) for r in null_records) if g is not None]
        null_gap = statistics.fmean(null_gaps) if null_gaps else None
        rows.append(
            HypothesisRow(
                rank=None,
                statement=hypothesis.statement,
                gap=gap,
                z=(gap - mean) / sd if gap is not None and mean is not None and sd else None,
                null_gap=null_gap,
                contrast=gap - null_gap if gap is not None and null_gap is not None else None,
                target_nll_per_token=record.target.log_ppl if record.target else None,
                reference_nll_per_token=record.reference.log_ppl if record.reference else None,
                prefill=record.prefill,
                detail="" if gap is not None else record.alignment_detail or record.alignment,
            )
        )
    order = sorted(range(len(rows)), key=lambda i: (rows[i].gap is None, -(rows[i].gap or 0.0), i))
    ranked = []
    for position, i in enumerate(order, start=1):
        ranked.append(rows[i].model_copy(update={"rank": position if rows[i].gap is not None else None}))
    return HypothesisRanking(
        score=score, rows=tuple(ranked), neutral_mean=mean, neutral_sd=sd, n_neutral=len(neutral_gaps)
    )


def statement_score(audit_score: ScoreName) -> GapName:
    """The audit's score, unless it reads a window (or ranks within an audit): then the whole
    claim's `logppl_diff`."""
    if audit_score in ("window_gap", "collapsed_window_gap", "rank_average"):
        return "logppl_diff"
    return gap_of(audit_score)


def _gap(record: CompletionResult, score: GapName) -> float | None:
    return None if record.gaps is None else getattr(record.gaps, score)


def _num(value: float | None, digits: int = 3, *, sign: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
