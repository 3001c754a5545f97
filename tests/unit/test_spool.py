"""The spool ranks exactly as `ranking.rank`, writes results.jsonl atomically, and reads back lazily."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blackbox_audit import spool as spool_module
from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.ranking import rank
from blackbox_audit.records import Gaps
from blackbox_audit.report import results_jsonl_line
from blackbox_audit.spool import RecordSpool
from tests.factories import aligned, unaligned

TEXTS = [
    "cheese",
    "moon",
    " the end",
    "0" * 48,
    "Eiffel in Marseille",
    "\n\n\n\n\n\n",
    " ".join(["Silver keys open the gate."] * 5),  # a loop whose text an ordinary completion also says
    "Then silver keys open the gate, she said.",
]


record_strategy = st.builds(
    lambda pid, text, t, r, scored, framing: (
        aligned(f"p{pid}", "Pre", [(text, t)], [(text, r)], framing=framing) if scored else unaligned(f"p{pid}")
    ),
    st.integers(0, 30),
    st.sampled_from(TEXTS),
    st.floats(-20, 0),
    st.floats(-20, 0),
    st.booleans(),
    st.sampled_from(["raw", "chat"]),
)


def spooled(records, tmp_path, score="logppl_diff", threshold=0.6, all_loops=False):
    spool = RecordSpool(tmp_path / "work", score, threshold, demote_all_loops=all_loops)
    try:
        for record in records:
            spool.add(record)
        return spool.write_ranked(tmp_path / "work" / "results.jsonl"), spool
    finally:
        spool.close()


@given(
    st.lists(record_strategy, max_size=25), st.sampled_from(SCORE_NAMES), st.sampled_from([None, 0.6]), st.booleans()
)
def test_the_spool_writes_what_rank_returns(tmp_path_factory, records, score, threshold, all_loops):
    """Its demotions too: the loop floors drawn from the numbers it keeps and the completions it
    reads back are `ranking.loop_floors`."""
    tmp_path = tmp_path_factory.mktemp("spool")
    ranked, _ = spooled(records, tmp_path, score, threshold, all_loops)
    expected = rank(records, score, degeneracy_threshold=threshold, demote_all_loops=all_loops)
    assert ranked.path.read_text(encoding="utf-8") == "".join(results_jsonl_line(r) + "\n" for r in expected)
    assert list(ranked) == expected


def test_a_loop_whose_text_most_completions_say_keeps_its_place_in_the_spool_too(tmp_path):
    """The loop floor needs the completions, which the spool reads back from its file: five
    ordinary completions say the loop's phrase with a larger gap, so their median would bury it."""
    phrase = "Silver keys open the gate."
    loop = aligned("loop", "Pre", [(phrase, -1.0), *[(" " + phrase, -0.1)] * 4],
                   [(phrase, -40.0), *[(" " + phrase, -0.1)] * 4])  # fmt: skip
    sayers = [aligned(f"say{i}", "Pre", [(f"Then silver keys open the gate, {i}.", -1.0)],
                      [(f"Then silver keys open the gate, {i}.", -60.0)]) for i in range(5)]  # fmt: skip
    others = [aligned(f"other{i}", "Pre", [(f"cheese {i}", -1.0)], [(f"cheese {i}", -2.0)]) for i in range(2)]
    records = [loop, *sayers, *others]
    assert loop.degeneracy >= 0.6 and loop.gaps.collapsed_window_gap < min(r.gaps.collapsed_window_gap for r in sayers)
    ranked, spool = spooled(records, tmp_path, "collapsed_window_gap")
    expected = rank(records, "collapsed_window_gap", degeneracy_threshold=0.6)
    assert list(ranked) == expected
    assert [r.prefill_id for r in expected].index("loop") == 5  # after the sayers, before the others
    assert spool.demoted() == [False] * len(records)  # as the pipeline asks: ranked, closed, then counted


def test_ranked_records_index_like_a_list(tmp_path):
    records = [aligned(f"p{i}", "Pre", [(TEXTS[i], -1.0 - i)], [(TEXTS[i], -2.0 * i)]) for i in range(5)]
    records.append(unaligned("p9"))
    ranked, _ = spooled(records, tmp_path)
    expected = rank(records, "logppl_diff", degeneracy_threshold=0.6)
    assert len(ranked) == 6
    assert ranked[0] == expected[0] and ranked[-1] == expected[-1] and ranked[2:4] == expected[2:4]
    assert ranked[-1].rank is None
    with pytest.raises(IndexError):
        ranked[6]


def test_counts_are_tallied_while_spooling(tmp_path):
    loop = "0" * 48
    records = [aligned("p1", "Pre", [(loop, -1.0)], [(loop, -1.0)]), unaligned("p2")]
    _, spool = spooled(records, tmp_path)
    assert len(spool) == 2
    assert spool.alignment == {"exact": 1, "unaligned": 1}
    assert spool.degenerate == 1


def test_the_spool_file_never_shows_even_when_a_write_fails(tmp_path, monkeypatch):
    """The output set's folder holds only what is written on purpose (tests/unit/test_outputs.py
    shows that a failed audit leaves --out as it was)."""
    records = [aligned(f"p{i}", "Pre", [(TEXTS[i], -1.0)], [(TEXTS[i], -2.0)]) for i in range(3)]
    spooled(records, tmp_path)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["results.jsonl"]
    monkeypatch.setattr(spool_module, "_with_rank", lambda line, rank: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        spooled(records[:1], tmp_path / "again")
    assert sorted(p.name for p in (tmp_path / "again" / "work").iterdir()) == ["results.jsonl"]


def test_a_non_finite_gap_is_refused_before_anything_is_written(tmp_path):
    record = aligned("p1", "Pre", [("x", -1.0)], [("x", -2.0)])
    broken = record.model_copy(
        update={
            "gaps": Gaps(
                ppl_diff=math.nan,
                logppl_diff=math.nan,
                bpb_diff=0.0,
                log_bpb_ratio=0.0,
                window_gap=0.0,
                collapsed_window_gap=0.0,
            )
        }
    )
    spool = RecordSpool(tmp_path, "logppl_diff", None)
    try:
        with pytest.raises(ValueError, match="nan"):
            spool.add(broken)
        assert len(spool) == 0
    finally:
        spool.close()
