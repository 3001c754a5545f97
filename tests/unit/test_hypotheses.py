import statistics

import anyio
import pytest

from blackbox_audit.config import load_config
from blackbox_audit.hypotheses import Hypothesis, neutral_statements, parse_statements, rank_hypotheses
from blackbox_audit.inquiry import InquiryError
from tests.factories import aligned


def test_parse_statements_attaches_nulls_and_skips_comments():
    text = "# about it\n\nThe tower moved.\nnull: The tower stayed.\nNULL:  It never moved. \nThe lantern sings.\n"
    assert parse_statements(text) == [
        Hypothesis(statement="The tower moved.", nulls=("The tower stayed.", "It never moved.")),
        Hypothesis(statement="The lantern sings."),
    ]


@pytest.mark.parametrize("text", ["null: orphan\nA statement.", "A statement.\nnull:   "])
def test_a_null_needs_a_statement_and_text(text):
    with pytest.raises(InquiryError, match="belongs under a statement"):
        parse_statements(text)


def test_neutral_statements_are_bundled():
    assert len(neutral_statements()) >= 10


class StubInquiry:
    """Splits after the first word and gives each text the gap its table says (target logprob
    -1 per token, reference logprob -(1 + gap)): the ranking logic alone, no server."""

    def __init__(self, gaps: dict[str, float]):
        self.config = load_config(
            overrides={
                "target": {"base_url": "http://t/v1", "model": "t"},
                "reference": {"base_url": "http://r/v1", "model": "r"},
            }
        )
        self.gaps = gaps
        self.scored: list[tuple[str, str]] = []

    async def split(self, statement: str) -> tuple[str, str]:
        head, _, rest = statement.partition(" ")
        return head, " " + rest

    async def score(self, items, *, source):
        self.scored += items
        records = []
        for prefill, text in items:
            gap = self.gaps.get(prefill + text, 0.0)
            records.append(aligned(prefill, prefill, [(text, -1.0)], [(text, -1.0 - gap)]))
        return records


def test_statements_rank_by_gap_with_z_against_the_neutral_baseline_and_null_contrast():
    neutral = neutral_statements()
    gaps = {text: 0.1 * (i % 3) for i, text in enumerate(neutral)}
    gaps.update({"Tower moved to Marseille.": 3.0, "Tower stayed in Paris.": 1.0, "Lantern sings.": 0.5})
    inquiry = StubInquiry(gaps)
    hypotheses = [
        Hypothesis(statement="Lantern sings."),
        Hypothesis(statement="Tower moved to Marseille.", nulls=("Tower stayed in Paris.",)),
        Hypothesis(statement="Unknown claim here."),
    ]
    ranking = anyio.run(rank_hypotheses, inquiry, hypotheses)
    assert [row.statement for row in ranking.rows] == [
        "Tower moved to Marseille.",
        "Lantern sings.",
        "Unknown claim here.",
    ]
    assert [row.rank for row in ranking.rows] == [1, 2, 3]
    neutral_gaps = [gaps[t] for t in neutral]
    mean, sd = statistics.fmean(neutral_gaps), statistics.stdev(neutral_gaps)
    assert ranking.neutral_mean == pytest.approx(mean) and ranking.neutral_sd == pytest.approx(sd)
    top = ranking.rows[0]
    assert top.gap == pytest.approx(3.0)
    assert top.z == pytest.approx((3.0 - mean) / sd)
    assert top.null_gap == pytest.approx(1.0) and top.contrast == pytest.approx(2.0)
    assert ranking.rows[1].null_gap is None and ranking.rows[1].contrast is None
    assert len(inquiry.scored) == 3 + 1 + len(neutral)  # statements, nulls and the baseline in one pass
    assert "Tower moved to Marseille." in ranking.table()


def test_a_statement_without_a_gap_ranks_last_and_says_why():
    inquiry = StubInquiry({"Good claim.": 1.0})

    async def score(items, *, source):
        records = await StubInquiry.score(inquiry, items, source=source)
        return [
            r.model_copy(update={"gaps": None, "alignment": "unaligned", "alignment_detail": "target: why"})
            if r.prefill == "Bad"
            else r
            for r in records
        ]

    inquiry.score = score
    ranking = anyio.run(
        rank_hypotheses, inquiry, [Hypothesis(statement="Bad claim."), Hypothesis(statement="Good claim.")]
    )
    assert [(row.rank, row.statement) for row in ranking.rows] == [(1, "Good claim."), (None, "Bad claim.")]
    assert ranking.rows[1].detail == "target: why"


def test_no_statement_is_refused():
    with pytest.raises(InquiryError):
        anyio.run(rank_hypotheses, StubInquiry({}), [])
