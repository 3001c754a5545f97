import pytest

from blackbox_audit.browse import MAX_TEXT_CHARS, Browser
from blackbox_audit.ranking import rank
from tests.factories import aligned, with_gaps


@pytest.fixture
def records():
    records = [
        with_gaps("a", 1.0, ppl_diff=30.0, completion=" The tower moved to Marseille."),
        with_gaps("b", 3.0, ppl_diff=5.0, completion=" Bread and butter."),
        with_gaps("c", 2.0, ppl_diff=1.0, completion=" x" * 60, degeneracy=0.9, collapsed_window_gap=0.1),
        with_gaps("d", None, completion=""),
    ]
    return rank(records, degeneracy_threshold=0.6)


def test_orderings_by_any_score_keep_demoted_and_gapless_records_last(records):
    browser = Browser(records, 0.6)
    assert [r.id for r in browser.top("logppl_diff", 10)] == [1, 2, 3, 4]  # the file's own order
    by_ppl = browser.top("ppl_diff", 10)
    assert [r.prefill + r.completion for r in by_ppl][:2] == [
        "The The tower moved to Marseille.",
        "The Bread and butter.",
    ]
    assert [r.rank for r in by_ppl] == [1, 2, 3, None]
    assert by_ppl[2].demoted and not by_ppl[0].demoted
    assert [r.id for r in by_ppl] == [2, 1, 3, 4]  # ids stay the file's lines
    assert [r.id for r in browser.top("ppl_diff", 2, offset=1)] == [1, 3]
    with pytest.raises(ValueError, match="unknown score"):
        browser.top("nope", 3)


def test_search_counts_every_match_and_orders_them_by_score(records):
    browser = Browser(records, 0.6)
    n, rows = browser.search("MARSEILLE", "logppl_diff", 5)
    assert n == 1 and rows[0].rank == 2
    n, rows = browser.search("the", "ppl_diff", 1)
    assert n == 4 and len(rows) == 1 and rows[0].rank == 1  # every prefill is "The"
    with pytest.raises(ValueError):
        browser.search("  ", "logppl_diff", 5)


def test_detail_gives_per_token_gaps_and_refuses_unknown_ids():
    record = aligned("p", "Fun", [(" moon", -1.0), (" cheese", -0.5)], [(" mo", -2.0), ("on cheese", -3.0)])
    browser = Browser(rank([record]), None)
    detail = browser.detail(1, "logppl_diff")
    assert [t.text for t in detail.tokens] == [" moon", " cheese"]
    # " moon": the reference's " mo" (-2) and 2 of the 9 characters of "on cheese" (-3): 2 + 2/3 nats, the target 1
    assert detail.tokens[0].gap == pytest.approx(2.0 + 3.0 * 2 / 9 - 1.0)
    assert sum(t.gap for t in detail.tokens) == pytest.approx(detail.reference.nll_nats - detail.target.nll_nats)
    assert detail.tokens[0].reference_tokens == ((" mo", -2.0), ("on cheese", -3.0))
    with pytest.raises(ValueError, match="no record 2"):
        browser.detail(2, "logppl_diff")


def test_long_completions_are_cut_in_rows_but_whole_in_detail():
    text = " word" * (MAX_TEXT_CHARS // 4)
    browser = Browser(rank([aligned("p", "A", [(text, -1.0)], [(text, -2.0)])]), None)
    assert browser.top("logppl_diff", 1)[0].completion.endswith("…")
    assert browser.detail(1, "logppl_diff").row.completion == text
