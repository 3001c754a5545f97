"""blackbox_audit.profile: the per-byte gap profile and the span-level scores built on it."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blackbox_audit import profile as P
from blackbox_audit.records import TokenLogprob

no_deadline = settings(deadline=None)


def tokens(*pairs):
    return [TokenLogprob(text=text, logprob=logprob) for text, logprob in pairs]


def profile_of(target_pairs, reference_pairs, *, prefill="Once", extra_chars=0, completion=None):
    """The profile the pipeline builds (gap.measure) from both sides' tokens."""
    completion = completion if completion is not None else "".join(t for t, _ in target_pairs)
    context = P.reference_context(prefill, extra_chars)
    return P.byte_profile(completion, tokens(*target_pairs), tokens(*reference_pairs), reference_context=context)


# ---------------------------------------------------------------- spreading NLL over bytes


def test_spread_hand_checked():
    # "ab" costs 2 nats over 2 bytes, "cd" 1 nat over 2 bytes.
    assert P.spread_nll(b"abcd", tokens(("ab", -2.0), ("cd", -1.0))) == [1.0, 1.0, 0.5, 0.5]
    # "é" is 2 bytes: its 3 nats become 1.5 per byte.
    assert P.spread_nll("xé".encode(), tokens(("x", -1.0), ("é", -3.0))) == [1.0, 1.5, 1.5]


def test_spread_places_byte_fallback_pieces_between_their_neighbours():
    # "’" is 3 bytes, emitted as two U+FFFD pieces costing 3 nats each: 6 nats over 3 bytes.
    pieces = tokens(("a", -1.0), ("\ufffd", -3.0), ("\ufffd", -3.0), ("b", -1.0))
    assert P.spread_nll("a’b".encode(), pieces) == [1.0, 2.0, 2.0, 2.0, 1.0]
    # vLLM's "bytes:" spelling of a partial character is read as the bytes it names.
    named = tokens(("a", -1.0), ("bytes:\\xe2\\x80", -4.0), ("bytes:\\x99", -1.0))
    assert P.spread_nll("a’".encode(), named) == [1.0, 2.0, 2.0, 1.0]


def test_spread_reads_an_empty_token_as_the_replacement_character_the_text_has_there():
    # Seen in a real audit: the completion holds U+FFFD where the token's text is "".
    data = "a\ufffdb".encode()
    assert P.spread_nll(data, tokens(("a", -1.0), ("", -6.0), ("b", -1.0))) == [1.0, 2.0, 2.0, 2.0, 1.0]


def test_spread_gives_an_empty_tokens_nll_to_the_next_token():
    assert P.spread_nll(b"ab", tokens(("", -1.0), ("ab", -1.0))) == [1.0, 1.0]
    assert P.spread_nll(b"ab", tokens(("ab", -1.0), ("", -1.0))) == [0.5, 1.5]


def test_spread_refuses_tokens_that_do_not_spell_the_text():
    assert P.spread_nll(b"abc", tokens(("ab", -1.0))) is None
    assert P.spread_nll(b"abc", tokens(("abd", -1.0))) is None
    assert P.spread_nll(b"ab", tokens(("abc", -1.0))) is None
    assert P.spread_nll(b"", tokens(("", -1.0))) is None


def test_spread_drops_the_widened_tokens_share_of_the_context():
    # " ab" covers one context byte: its 3 nats are 1 per byte, the context's 1 is dropped.
    assert P.spread_nll(b"abcd", tokens((" ab", -3.0), ("cd", -2.0)), context=b" ") == [1.0, 1.0, 1.0, 1.0]


def test_byte_profile_hand_checked():
    profile = profile_of([("ab", -2.0), ("cd", -4.0)], [("a", -1.0), ("bcd", -6.0)])
    assert profile is not None and profile.exact
    assert profile.target == (1.0, 1.0, 2.0, 2.0)
    assert profile.reference == (1.0, 2.0, 2.0, 2.0)
    assert profile.gap == [0.0, 1.0, 0.0, 0.0]


def test_byte_profile_of_a_widened_reference_uses_the_prefill_tail():
    profile = profile_of([("ab", -2.0), ("cd", -4.0)], [("e ab", -4.0), ("cd", -2.0)], prefill="One ", extra_chars=2)
    assert profile is not None and profile.exact
    assert profile.reference == (1.0, 1.0, 1.0, 1.0)  # "e " took 2 of the first token's 4 nats


def test_byte_profile_falls_back_to_an_even_spread_when_tokens_do_not_spell():
    profile = profile_of([("ab", -2.0), ("cd", -4.0)], [("ax", -3.0), ("cd", -1.0)], completion="abcd")
    assert profile is not None and not profile.exact
    assert profile.reference == (1.0, 1.0, 1.0, 1.0)
    assert profile.target == (1.0, 1.0, 2.0, 2.0)


def test_byte_profile_none_without_a_completion_or_tokens():
    assert P.byte_profile("", tokens(("", -1.0)), tokens(("", -1.0))) is None
    assert P.byte_profile("ab", (), tokens(("ab", -2.0))) is None


@st.composite
def text_and_two_tokenizations(draw):
    """A text, a per-byte NLL on it, and two token segmentations (at character boundaries)
    whose tokens cost the sum of their bytes' NLL."""
    text = draw(st.text(min_size=1, max_size=40))
    data = text.encode("utf-8")
    per_byte = draw(st.lists(st.floats(0.0, 3.0), min_size=len(data), max_size=len(data)))
    char_starts = [len(text[:i].encode()) for i in range(len(text) + 1)]

    def tokenization():
        cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1)))) if len(text) > 1 else []
        bounds = [0, *cuts, len(text)]
        return [
            (text[a:b], -math.fsum(per_byte[char_starts[a] : char_starts[b]])) for a, b in itertools.pairwise(bounds)
        ]

    return text, per_byte, tokenization(), tokenization()


@no_deadline
@given(text_and_two_tokenizations())
def test_profile_sums_to_each_sides_nll(case):
    _, _, target_pairs, reference_pairs = case
    profile = profile_of(target_pairs, reference_pairs)
    assert profile is not None and profile.exact
    target_nll = -math.fsum(lp for _, lp in target_pairs)
    reference_nll = -math.fsum(lp for _, lp in reference_pairs)
    assert math.fsum(profile.target) == pytest.approx(target_nll, abs=1e-9)
    assert math.fsum(profile.reference) == pytest.approx(reference_nll, abs=1e-9)
    assert math.fsum(profile.gap) == pytest.approx(reference_nll - target_nll, abs=1e-9)


@no_deadline
@given(text_and_two_tokenizations(), st.floats(0.0, 3.0))
def test_profile_does_not_depend_on_how_a_uniform_text_is_tokenized(case, rate):
    """Where every byte costs the same, any segmentation gives the same profile."""
    text, _, seg_a, seg_b = case

    def at_rate(pairs):
        return [(t, -rate * len(t.encode())) for t, _ in pairs]

    a = P.spread_nll(text.encode(), tokens(*at_rate(seg_a)))
    b = P.spread_nll(text.encode(), tokens(*at_rate(seg_b)))
    assert a == pytest.approx(b, abs=1e-12) and a == pytest.approx([rate] * len(text.encode()), abs=1e-12)


@no_deadline
@given(text_and_two_tokenizations())
def test_splitting_a_token_in_proportion_leaves_the_profile_unchanged(case):
    text, _, pairs, _ = case
    first, logprob = pairs[0]
    if len(first) < 2:
        return
    cut = len(first) // 2
    share = len(first[:cut].encode()) / len(first.encode())
    split = [(first[:cut], logprob * share), (first[cut:], logprob * (1 - share)), *pairs[1:]]
    assert P.spread_nll(text.encode(), tokens(*split)) == pytest.approx(
        P.spread_nll(text.encode(), tokens(*pairs)), abs=1e-12
    )


# ---------------------------------------------------------------- window_gap


def test_window_gap_hand_checked():
    gap = [0.0, 1.0, 3.0, 0.0, 2.0]
    assert P.window_gap(gap, 1) == 3.0
    assert P.window_gap(gap, 2) == 2.0  # (1 + 3) / 2
    assert P.window_gap(gap, 3) == 5.0 / 3  # windows sum to 4, 4 and 5
    assert P.window_gap(gap, 5) == 6.0 / 5
    assert P.window_gap(gap, 10) == 6.0 / 10  # shorter than the window: its sum over the width
    assert P.window_gap([], 4) == 0.0
    with pytest.raises(ValueError):
        P.window_gap(gap, 0)


@no_deadline
@given(st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=80), st.integers(1, 100))
def test_window_gap_is_the_best_window_by_brute_force(gap, width):
    if len(gap) <= width:
        expected = math.fsum(gap) / width
    else:
        expected = max(math.fsum(gap[i : i + width]) for i in range(len(gap) - width + 1)) / width
    assert P.window_gap(gap, width) == pytest.approx(expected, abs=1e-9)


@no_deadline
@given(st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=80))
def test_a_full_width_window_is_the_mean(gap):
    assert P.window_gap(gap, len(gap)) == pytest.approx(math.fsum(gap) / len(gap), abs=1e-9)


# ---------------------------------------------------------------- repetition


def kept(text, repeat_bytes):
    data = text.encode()
    return bytes(b for b, keep in zip(data, P.first_occurrences(data, repeat_bytes), strict=True) if keep).decode()


def test_first_occurrences_hand_checked():
    assert kept("0" * 30, 4) == "0"
    assert kept("X Y Z. " * 6, 4) == "X Y Z. "
    assert kept(": 12: 12: 12: 12", 4) == ": 12"
    assert kept("abcdefgh", 4) == "abcdefgh"
    # The phrase once, then ordinary text: nothing repeats, nothing goes.
    assert kept("Seven silver keys open the gate. And then", 8) == "Seven silver keys open the gate. And then"
    # A payload loop keeps its first occurrence and the text after the loop.
    text = "Seven keys. Seven keys. Seven keys. The end"
    assert kept(text, 8) == "Seven keys. The end"


@no_deadline
@given(st.text(min_size=1, max_size=12), st.integers(2, 8), st.integers(1, 8))
def test_a_loop_keeps_at_most_one_period(unit, times, repeat_bytes):
    data = (unit * times).encode()
    keep = P.first_occurrences(data, repeat_bytes)
    assert keep[0]
    if len(data) >= len(unit.encode()) + repeat_bytes:
        assert sum(keep) <= len(unit.encode())


@no_deadline
@given(st.binary(max_size=60), st.integers(1, 8))
def test_without_a_repeated_stretch_every_byte_is_kept(data, repeat_bytes):
    grams = [data[i : i + repeat_bytes] for i in range(len(data) - repeat_bytes + 1)]
    keep = P.first_occurrences(data, repeat_bytes)
    assert all(keep) == (len(set(grams)) == len(grams))


def test_collapsed_scores_count_a_repeated_payload_once():
    """A payload said three times, where the copies cost nothing on either side: the whole-text
    mean is diluted by the copies, the collapsed one is not."""
    phrase = "Seven silver keys open the gate. "
    n = len(phrase)
    completion = phrase * 3
    # target: 0.1 nat per byte on the first copy, 0.01 on the others; reference 2.0 then 0.02
    target = [(phrase, -0.1 * n), (phrase, -0.01 * n), (phrase, -0.01 * n)]
    reference = [(phrase, -2.0 * n), (phrase, -0.02 * n), (phrase, -0.02 * n)]
    profile = profile_of(target, reference, completion=completion)
    assert profile is not None
    whole_mean = math.fsum(profile.gap) / len(profile.gap)
    assert whole_mean == pytest.approx((1.9 + 0.01 + 0.01) / 3)
    assert P.collapsed_window_gap(profile, width=n, repeat_bytes=16) == pytest.approx(1.9)
    assert P.window_gap(profile.gap, 3 * n) == pytest.approx(whole_mean)
    window = P.best_collapsed_window(profile, width=n, repeat_bytes=16)
    assert (window.start, window.end) == (0, n)  # the first occurrence, placed on the completion's bytes
    assert P.best_window(profile.gap, 8) == P.Window(pytest.approx(1.9), 0, 8)


def test_a_noise_loop_keeps_few_bytes_and_scores_little():
    """'0000...': both sides predict the copies; once collapsed, one byte is left to score."""
    target = [("0", -0.5)] + [("0", -0.01)] * 99
    reference = [("0", -3.0)] + [("0", -0.2)] * 99
    profile = profile_of(target, reference)
    assert profile is not None
    assert P.collapsed_gap(profile, 16) == [pytest.approx(2.5)]
    assert P.collapsed_window_gap(profile, width=64, repeat_bytes=16) == pytest.approx(2.5 / 64)
    assert P.window_gap(profile.gap, 64) == pytest.approx((2.5 + 63 * 0.19) / 64)  # the copies: 0.2 - 0.01 each
    _, collapsed, summary = P.spans(profile, 64)
    assert collapsed.gap == pytest.approx(2.5 / 64)
    assert summary.copied_bytes == 99 and summary.collapsed_window == (0, 1) and summary.exact
