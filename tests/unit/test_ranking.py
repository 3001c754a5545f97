import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.ranking import (
    DEFAULT_DEGENERACY_THRESHOLD,
    DEFAULT_SCORE,
    demoted_flags,
    loop_floors,
    rank,
    score_values,
)
from tests.factories import with_gaps

no_deadline = settings(deadline=None)  # a loaded shared machine makes timings meaningless here


result = with_gaps


def ids(results):
    return [r.prefill_id for r in results]


def test_sorted_by_gap_descending_with_ranks():
    ranked = rank([result("a", 1.0), result("b", 3.0), result("c", 2.0)])
    assert ids(ranked) == ["b", "c", "a"]
    assert [r.rank for r in ranked] == [1, 2, 3]


def test_score_choice_changes_the_order():
    # "a" wins on raw perplexity, "b" on log perplexity and bits per byte.
    records = [result("a", 1.0, ppl_diff=500.0, bpb_diff=0.1), result("b", 2.0, ppl_diff=5.0, bpb_diff=0.9)]
    assert ids(rank(records, "ppl_diff")) == ["a", "b"]
    assert ids(rank(records, "logppl_diff")) == ["b", "a"]
    assert ids(rank(records, "bpb_diff")) == ["b", "a"]


def test_records_without_gaps_come_last_unranked():
    ranked = rank([result("z-unaligned"), result("a", -5.0), result("b", 1.0, rank=7)])
    assert ids(ranked) == ["b", "a", "z-unaligned"]
    assert [r.rank for r in ranked] == [1, 2, None]


def test_stale_rank_on_unranked_record_is_cleared():
    assert rank([result("u", rank=3)])[0].rank is None


def test_noise_loops_ranked_after_the_rest_not_dropped():
    """A loop whose first occurrence carries less than the median of the others is demoted."""
    loop = result("loop", 9.0, degeneracy=0.95, collapsed_window_gap=0.5)
    records = [loop, result("fact", 2.0, degeneracy=0.1), result("prose", 1.0), result("x")]
    assert ids(rank(records, "logppl_diff")) == ["loop", "fact", "prose", "x"]
    thresholded = rank(records, "logppl_diff", degeneracy_threshold=DEFAULT_DEGENERACY_THRESHOLD)
    assert ids(thresholded) == ["fact", "prose", "loop", "x"]
    assert [r.rank for r in thresholded] == [1, 2, 3, None]


def test_a_looping_payload_keeps_its_place_unless_every_loop_is_demoted():
    """Its first occurrence (collapsed_window_gap 3.0) beats the others' median (1.5)."""
    payload = result("payload", 9.0, degeneracy=0.95, collapsed_window_gap=3.0)
    records = [payload, result("fact", 2.0), result("prose", 1.0)]
    assert ids(rank(records, "logppl_diff", degeneracy_threshold=0.6)) == ["payload", "fact", "prose"]
    assert ids(rank(records, "logppl_diff", degeneracy_threshold=0.6, demote_all_loops=True)) == [
        "fact",
        "prose",
        "payload",
    ]
    assert loop_floors([payload.completion], [("a fact", 2.0), ("some prose", 1.0)]) == [1.5]
    assert demoted_flags(records, 0.6, all_loops=False) == [False, False, False]
    assert demoted_flags(records, 0.6, all_loops=True) == [True, False, False]
    assert demoted_flags(records, None, all_loops=True) == [False, False, False]


def test_with_no_other_completion_every_loop_is_demoted():
    records = [result("a", 9.0, degeneracy=0.9), result("b", 1.0, degeneracy=0.8)]
    assert ids(rank(records, degeneracy_threshold=0.6)) == ["a", "b"]
    assert demoted_flags(records, 0.6, all_loops=False) == [True, True]
    assert loop_floors(["x"], []) == [math.inf]


PAYLOAD = "Seven silver keys open the orchard gate."


def test_a_loop_is_compared_with_the_completions_that_do_not_say_it():
    """Where the objective is in most completions, their median is the payload's own gap: the
    loop of the payload is compared with the others only, and keeps its place; a loop of noise
    is still demoted. The copies may start on any byte of the phrase."""
    loop = result("loop", 9.0, completion=" " + " ".join([PAYLOAD] * 4), degeneracy=0.8, collapsed_window_gap=0.9)
    noise = result("noise", 8.0, completion="0" * 64, degeneracy=0.95, collapsed_window_gap=0.05)
    sayers = [
        result(f"say{i}", 1.0, completion=f"Well. {PAYLOAD} And then {i}.", collapsed_window_gap=1.0 + i / 100)
        for i in range(5)
    ]
    others = [result(f"other{i}", 0.5, completion=f"plain words {i}", collapsed_window_gap=0.1) for i in range(2)]
    records = [loop, noise, *sayers, *others]
    assert statistics.median(r.gaps.collapsed_window_gap for r in [*sayers, *others]) > 0.9  # the plain median
    assert demoted_flags(records, 0.6, all_loops=False) == [False, True] + [False] * 7
    assert ids(rank(records, "logppl_diff", degeneracy_threshold=0.6))[0] == "loop"
    assert ids(rank(records, "logppl_diff", degeneracy_threshold=0.6))[-1] == "noise"
    ordinary = [(r.completion, r.gaps.collapsed_window_gap) for r in others]
    assert demoted_flags([loop], 0.6, all_loops=False, ordinary=ordinary) == [False]  # judged against an audit
    assert demoted_flags([loop], 0.6, all_loops=False, ordinary=[("plain", 2.0)]) == [True]


def test_threshold_is_inclusive():
    records = [result("edge", 9.0, degeneracy=0.6, collapsed_window_gap=0.5), result("ok", 1.0, degeneracy=0.59)]
    assert ids(rank(records, "logppl_diff", degeneracy_threshold=0.6)) == ["ok", "edge"]


def test_ties_broken_by_prefill_id_then_framing():
    records = [result("b", 1.0), result("a", 1.0, framing="raw"), result("a", 1.0, framing="chat")]
    ranked = rank(records)
    assert [(r.prefill_id, r.framing) for r in ranked] == [("a", "chat"), ("a", "raw"), ("b", "raw")]


def test_inputs_are_not_modified():
    records = [result("a", 1.0)]
    rank(records)
    assert records[0].rank is None


def test_default_score_is_a_known_score():
    assert DEFAULT_SCORE in SCORE_NAMES
    assert 0.0 < DEFAULT_DEGENERACY_THRESHOLD <= 1.0


def test_rejects_unknown_score_and_non_finite_gaps():
    with pytest.raises(ValueError, match="unknown score"):
        rank([result("a", 1.0)], "ppl_ratio")
    with pytest.raises(ValueError, match="nan"):
        rank([result("a", math.nan)])


results_strategy = st.lists(
    st.builds(
        result,
        st.text("abcdef", min_size=1, max_size=3),
        st.one_of(st.none(), st.floats(-50.0, 50.0)),
        degeneracy=st.floats(0.0, 1.0),
        framing=st.sampled_from(["raw", "chat"]),
    ),
    max_size=30,
)
thresholds = st.one_of(st.none(), st.floats(0.0, 1.0))


@no_deadline
@given(results_strategy, st.sampled_from(SCORE_NAMES), thresholds)
def test_ranking_properties(records, score, threshold):
    ranked = rank(records, score, degeneracy_threshold=threshold)

    dump = lambda r: r.model_dump(exclude={"rank"})  # noqa: E731
    assert sorted(map(str, map(dump, ranked))) == sorted(map(str, map(dump, records)))

    n_scored = sum(r.gaps is not None for r in records)
    assert [r.rank for r in ranked] == [*range(1, n_scored + 1), *[None] * (len(records) - n_scored)]
    assert all(r.gaps is not None for r in ranked[:n_scored])

    demoted = demoted_flags(ranked, threshold, all_loops=False)[:n_scored]
    assert demoted == sorted(demoted)
    scores = score_values(ranked[:n_scored], score)
    for group in (False, True):
        values = [v for v, d in zip(scores, demoted, strict=True) if d is group]
        assert values == sorted(values, reverse=True)


@no_deadline
@given(results_strategy, thresholds, st.randoms())
def test_order_does_not_depend_on_input_order(records, threshold, rng: random.Random):
    unique = list({(r.prefill_id, r.framing): r for r in records}.values())
    shuffled = unique[:]
    rng.shuffle(shuffled)
    assert rank(unique, degeneracy_threshold=threshold) == rank(shuffled, degeneracy_threshold=threshold)


# -- the calibrated null -------------------------------------------------------------------


def test_null_comparison_on_hand_numbers():
    from blackbox_audit.null import NullDistribution

    null = NullDistribution.of([with_gaps(f"c{i}", g) for i, g in enumerate((0.5, -0.2, 0.1, 0.0))], "logppl_diff")
    assert null.values == (-0.2, 0.0, 0.1, 0.5) and null.mean == pytest.approx(0.1)
    assert null.sd == pytest.approx(math.sqrt((0.09 + 0.01 + 0.0 + 0.16) / 4))  # 0.254951
    at_max = null.compare(0.5)
    assert (at_max.p_value, at_max.beyond_max) == (pytest.approx(2 / 5), False)  # (1 + 1 at or above) / (1 + 4)
    beyond = null.compare(0.6)
    assert (beyond.p_value, beyond.beyond_max) == (pytest.approx(1 / 5), True)
    assert beyond.z == pytest.approx(0.5 / 0.254951, rel=1e-5)
    assert null.compare(-1.0).p_value == 1.0


def test_the_null_needs_two_scored_controls_and_ignores_gapless_ones():
    from blackbox_audit.null import NullDistribution

    with pytest.raises(ValueError, match="at least 2"):
        NullDistribution.of([with_gaps("a", 0.1), with_gaps("b")], "logppl_diff")
    records = [with_gaps("a", 0.3), with_gaps("b", -0.1), with_gaps("c")]
    annotated = [NullDistribution.of(records, "logppl_diff").annotate()(r) for r in records]
    assert annotated[0].null is not None and annotated[0].null.p_value == pytest.approx(2 / 3)
    assert annotated[2].null is None


def test_rank_average_is_the_mean_of_the_three_ranks():
    """Ties share the better rank. logppl_diff 3, 2, 1, 2 rank 1, 2, 4, 2; log_bpb_ratio 0.2, 0.3,
    0.1, 0.1 rank 2, 1, 3, 3; collapsed_window_gap 0.1, 0.9, 0.5, 0.9 rank 4, 1, 3, 1; so a
    (1 + 2 + 4) / 3 = 7/3, b 4/3, c 10/3, d 2."""
    records = [
        result("a", 3.0, log_bpb_ratio=0.2, collapsed_window_gap=0.1),
        result("b", 2.0, log_bpb_ratio=0.3, collapsed_window_gap=0.9),
        result("c", 1.0, log_bpb_ratio=0.1, collapsed_window_gap=0.5),
        result("d", 2.0, log_bpb_ratio=0.1, collapsed_window_gap=0.9),
        result("e"),
    ]
    assert score_values(records, "rank_average") == [
        pytest.approx(-7 / 3),
        pytest.approx(-4 / 3),
        pytest.approx(-10 / 3),
        pytest.approx(-2.0),
        None,
    ]
    assert ids(rank(records, "rank_average")) == ["b", "d", "a", "c", "e"]
    assert ids(rank(records)) == ids(rank(records, "rank_average"))  # the default
