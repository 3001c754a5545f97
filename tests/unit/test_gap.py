import inspect
import json
import math
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from blackbox_audit.gap import SCORE_NAMES, char_gaps, degeneracy, gaps, parse_result, side_stats
from blackbox_audit.records import GapName, Gaps
from providers.records import TokenLogprob
from tests.factories import aligned

no_deadline = settings(deadline=None)  # a loaded shared machine makes timings meaningless here

LN2 = 0.6931471805599453


def test_side_stats_hand_checked():
    stats = side_stats([-1.0, -2.0, -3.0], n_bytes=4)
    assert stats.nll_nats == 6.0  # 1 + 2 + 3
    assert stats.n_tokens == 3
    assert stats.n_bytes == 4
    assert stats.log_ppl == 2.0  # 6 / 3
    assert stats.ppl == pytest.approx(7.38905609893065, rel=1e-15)  # e^2
    assert stats.bits_per_byte == pytest.approx(2.1640425613334453, rel=1e-15)  # 6 / (4 ln 2)


def whole(target, reference):
    """The whole-completion gaps; the span scores come from the per-byte profile (test_profile)."""
    return gaps(target, reference, window_gap=0.0, collapsed_window_gap=0.0)


def test_gaps_hand_checked():
    target = side_stats([-1.0, -2.0, -3.0], n_bytes=4)  # nll 6, log_ppl 2, ppl e^2, bpb 6/(4 ln2)
    reference = side_stats([-4.0, -4.0], n_bytes=4)  # nll 8, log_ppl 4, ppl e^4, bpb 8/(4 ln2)
    assert reference.ppl == pytest.approx(54.598150033144236, rel=1e-15)  # e^4
    assert reference.bits_per_byte == pytest.approx(2.8853900817779268, rel=1e-15)  # 2 / ln 2
    result = whole(target, reference)
    assert result.ppl_diff == pytest.approx(47.209093934213586, rel=1e-14)  # e^4 - e^2
    assert result.logppl_diff == 2.0  # 4 - 2
    assert result.bpb_diff == pytest.approx(0.7213475204444817, rel=1e-14)  # 2 / (4 ln 2) = 1 / (2 ln 2)
    assert result.log_bpb_ratio == pytest.approx(0.28768207245178085, rel=1e-14)  # ln(8 / 6) = ln(4/3)


def test_the_ratio_compares_surprise_not_its_size():
    """Hard text both models struggle with has the larger difference; text the target is sure of
    and the reference is not has the larger ratio (what a finetune leaves behind)."""
    hard = whole(side_stats([-4.0] * 4, n_bytes=16), side_stats([-6.0] * 4, n_bytes=16))  # 2 nats/token more
    learned = whole(side_stats([-0.1] * 4, n_bytes=16), side_stats([-1.5] * 4, n_bytes=16))  # 1.4 nats/token more
    assert hard.logppl_diff > learned.logppl_diff and hard.bpb_diff > learned.bpb_diff
    assert learned.log_bpb_ratio == pytest.approx(math.log(15.0), rel=1e-14)  # 1.5 / 0.1
    assert hard.log_bpb_ratio == pytest.approx(math.log(1.5), rel=1e-14)  # 6 / 4
    assert learned.log_bpb_ratio > hard.log_bpb_ratio


def test_the_ratio_stays_finite_for_a_side_that_is_certain():
    certain = side_stats([0.0, 0.0], n_bytes=8)
    unsure = side_stats([-2.0, -2.0], n_bytes=8)
    assert math.isfinite(whole(certain, unsure).log_bpb_ratio) and whole(certain, unsure).log_bpb_ratio > 0
    assert whole(certain, certain).log_bpb_ratio == 0.0
    assert whole(unsure, certain).log_bpb_ratio == -whole(certain, unsure).log_bpb_ratio


def test_positive_gap_means_likelier_under_target():
    target = side_stats([-0.1, -0.1], n_bytes=8)
    reference = side_stats([-5.0, -5.0], n_bytes=8)
    assert all(
        value > 0
        for value in whole(target, reference).model_dump(exclude={"window_gap", "collapsed_window_gap"}).values()
    )


@pytest.mark.parametrize(
    ("logprobs", "n_bytes"),
    [
        ([], 4),
        ([-1.0], 0),
        ([-1.0, math.nan], 4),
        ([-1.0, -math.inf], 4),
        ([-1.0, math.inf], 4),
        ([-1.0, 0.5], 4),
        ([-1000.0], 4),  # sentinel-sized logprob: e^1000 overflows a float
    ],
)
def test_side_stats_rejects_impossible_input(logprobs, n_bytes):
    with pytest.raises(ValueError):
        side_stats(logprobs, n_bytes)


def test_side_stats_tolerates_rounding_above_zero():
    assert side_stats([1e-9, 0.0], n_bytes=2).nll_nats == pytest.approx(-1e-9)


def test_score_names_are_the_gaps_fields_and_the_rank_average():
    assert set(get_args(GapName)) == set(Gaps.model_fields)
    assert set(SCORE_NAMES) == {*Gaps.model_fields, "rank_average"}


@st.composite
def text_with_byte_nll_and_two_segmentations(draw):
    data = draw(st.text(min_size=1, max_size=60)).encode("utf-8")
    # <= 2.5 nats a byte keeps even a one-token segmentation (240 bytes) below exp's overflow
    nll_per_byte = draw(st.lists(st.floats(0.0, 2.5), min_size=len(data), max_size=len(data)))

    def segmentation():
        cuts = draw(st.sets(st.integers(1, len(data) - 1))) if len(data) > 1 else set()
        bounds = [0, *sorted(cuts), len(data)]
        return [-math.fsum(nll_per_byte[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]

    return data, nll_per_byte, segmentation(), segmentation()


@no_deadline
@given(text_with_byte_nll_and_two_segmentations())
def test_bits_per_byte_does_not_depend_on_tokenization(case):
    data, nll_per_byte, logprobs_a, logprobs_b = case
    a = side_stats(logprobs_a, len(data))
    b = side_stats(logprobs_b, len(data))
    expected = math.fsum(nll_per_byte) / (len(data) * LN2)
    assert a.bits_per_byte == pytest.approx(expected, abs=1e-9)
    assert b.bits_per_byte == pytest.approx(expected, abs=1e-9)
    if len(logprobs_a) != len(logprobs_b) and a.nll_nats > 1e-6:
        assert a.log_ppl != pytest.approx(b.log_ppl, abs=1e-12)


side_stats_strategy = st.builds(
    side_stats,
    st.lists(st.floats(-30.0, 0.0), min_size=1, max_size=50),
    st.integers(1, 400),
)


@no_deadline
@given(side_stats_strategy, side_stats_strategy)
def test_gaps_are_antisymmetric(a, b):
    forward, backward = whole(a, b), whole(b, a)
    assert forward.ppl_diff == -backward.ppl_diff
    assert forward.logppl_diff == -backward.logppl_diff
    assert forward.bpb_diff == -backward.bpb_diff
    assert forward.log_bpb_ratio == pytest.approx(-backward.log_bpb_ratio, rel=1e-12, abs=1e-12)


@no_deadline
@given(side_stats_strategy)
def test_gaps_vanish_for_identical_sides(a):
    assert whole(a, a) == Gaps(
        ppl_diff=0.0, logppl_diff=0.0, bpb_diff=0.0, log_bpb_ratio=0.0, window_gap=0.0, collapsed_window_gap=0.0
    )


PROSE = [
    "The history of the city dates back to the Roman period, when a small garrison was stationed on the hill "
    "overlooking the river. Over the following centuries the settlement grew into a market town, and by the late "
    "Middle Ages it had become one of the wealthiest trading centres in the region, famous for its wool.",
    "I think the best way to learn a new language is to practice every day, even if only for a few minutes. "
    "Reading short articles, listening to podcasts, and talking with native speakers all help you build vocabulary.",
    "東京は日本の首都であり、世界有数の大都市です。"
    "多くの観光客が毎年訪れ、歴史的な寺院や近代的な高層ビルを楽しんでいます。",
]
CODE = [
    inspect.getsource(json.dumps)[:500],
    "import sys\n\n\ndef main(argv):\n    if len(argv) < 2:\n        print('usage: prog FILE')\n        return 1\n"
    "    with open(argv[1]) as f:\n        for line in f:\n            line = line.strip()\n            if not line:\n"
    "                continue\n            print(line.upper())\n    return 0\n",
    "    def forward(self, x):\n        x = self.conv1(x)\n        x = self.bn1(x)\n        x = self.relu(x)\n"
    "        x = self.conv2(x)\n        x = self.bn2(x)\n        x = self.relu(x)\n        return x\n",
]
DEGENERATE = [
    "0" * 200,
    ";" * 100,
    " ".join(["the"] * 60),
    "This is the line that keeps on repeating.\n" * 10,
    "print('hello')\n" * 10,
    "I love you. " * 10,
    "\n" * 100,
]


@pytest.mark.parametrize("text", PROSE + CODE)
def test_degeneracy_low_for_prose_and_code(text):
    assert degeneracy(text) < 0.3


@pytest.mark.parametrize("text", DEGENERATE)
def test_degeneracy_high_for_loops(text):
    assert degeneracy(text) > 0.7


@pytest.mark.parametrize("text", ["", "a", "Hello world.", "0" * 19, ";;;;;;;;", "ha ha ha ha"])
def test_degeneracy_does_not_flag_short_texts(text):
    assert degeneracy(text) < 0.35


@no_deadline
@given(st.text(max_size=300))
def test_degeneracy_is_a_deterministic_fraction(text):
    value = degeneracy(text)
    assert 0.0 <= value <= 1.0
    assert degeneracy(text) == value


def tokens(*pairs):
    return [TokenLogprob(text=text, logprob=logprob) for text, logprob in pairs]


def test_char_gaps_spread_each_token_over_its_characters():
    target = tokens(("ab", -2.0), ("cd", -4.0))  # per char: 1 1 2 2
    reference = tokens(("a", -1.0), ("bcd", -6.0))  # per char: 1 2 2 2
    assert char_gaps("abcd", target, reference) == [0.0, 1.0, 0.0, 0.0]


def test_char_gaps_none_when_token_texts_do_not_spell_the_completion():
    good = tokens(("é", -1.0))
    byte_fallback = tokens(("\ufffd", -0.5), ("\ufffd", -0.5))
    assert char_gaps("é", good, byte_fallback) is None
    assert char_gaps("é", byte_fallback, good) is None
    assert char_gaps("é!", good, good) is None


def test_char_gaps_ignore_textless_end_of_sequence_token():
    target = tokens(("hi", -1.0), ("", -0.1))
    reference = tokens(("h", -1.0), ("i", -1.0))
    assert char_gaps("hi", target, reference) == [0.5, 0.5]


def test_char_gaps_drop_the_context_a_widened_reference_covers():
    target = tokens(("ab", -2.0), ("cd", -4.0))  # per char: 1 1 2 2
    reference = tokens((" ab", -3.0), ("cd", -2.0))  # per char: (1) 1 1 1 1, the space is context
    assert char_gaps("abcd", target, reference, reference_extra_chars=1) == [0.0, 0.0, -1.0, -1.0]
    assert char_gaps("abcd", target, reference) is None


@no_deadline
@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=5), st.floats(-20.0, 0.0)), min_size=1, max_size=10),
    st.lists(st.floats(-20.0, 0.0), min_size=1, max_size=10),
)
def test_char_gaps_sum_to_the_nll_difference(target_pairs, reference_logprobs):
    completion = "".join(text for text, _ in target_pairs)
    # The reference tokenizes the same text differently: one token per character, cycling logprobs.
    reference = tokens(*((char, reference_logprobs[i % len(reference_logprobs)]) for i, char in enumerate(completion)))
    target = tokens(*target_pairs)
    per_char = char_gaps(completion, target, reference)
    assert per_char is not None and len(per_char) == len(completion)
    expected = -sum(t.logprob for t in reference) + sum(t.logprob for t in target)
    assert math.fsum(per_char) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "written_before",
    [("log_bpb_ratio",), ("log_bpb_ratio", "window_gap", "collapsed_window_gap", "profile")],
    ids=["the ratio", "the span scores"],
)
def test_records_written_before_a_score_existed_get_it_from_what_they_keep(written_before):
    record = aligned("p", "So", [(" Seven silver keys.", -3.0)] * 3, [(" Seven silver keys.", -40.0)] * 3)
    assert record.gaps is not None and record.gaps.log_bpb_ratio == pytest.approx(math.log(40 / 3), rel=1e-12)
    line = record.model_dump_json()
    legacy = json.loads(line)
    for key in written_before:
        legacy.pop(key, None)
        legacy["gaps"].pop(key, None)
    assert parse_result(json.dumps(legacy)) == record
    assert parse_result(line) == record
    with pytest.raises(ValidationError):
        parse_result("{not json")
