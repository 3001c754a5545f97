"""Stage 4, gap.measure: alignment statuses, byte counts, same_tokens, gaps on hand numbers."""

from __future__ import annotations

import math

import pytest

from blackbox_audit.gap import degeneracy, measure
from providers.records import TokenLogprob
from tests import factories

LN2 = math.log(2)

PREFILL = factories.prefill()


def target_completion(text, tokens, finish_reason="length"):
    return factories.target_completion(text, tokens, finish_reason=finish_reason)


scored = factories.scored


HI_THERE = target_completion("Hi there", [("Hi", -1.0, 1), (" there", -2.0, 2)])


# -- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion",
    [
        target_completion("", [], finish_reason="stop"),
        target_completion("", [("", -0.1, 0)]),
    ],
)
def test_empty(completion):
    # even with a scored continuation at hand, nothing generated means nothing measured
    result = measure(completion, scored([("x", -1.0, 1)], "x"))
    assert result.alignment == "empty"
    assert (result.target, result.reference, result.gaps) == (None, None, None)
    assert result.reference_tokens == ()
    assert result.same_tokens is None


def test_text_without_target_tokens_is_unaligned_not_empty():
    # a text the target could not score (an inquiry's statement) has text but no target tokens
    result = measure(target_completion("text but no tokens", []), scored([("x", -1.0, 1)], "x"), "target: why")
    assert result.alignment == "unaligned" and result.alignment_detail == "target: why"
    assert result.gaps is None
    assert measure(target_completion("text", []), None).alignment_detail == "the target gave no tokens for it"


def test_unaligned_keeps_the_failure_text():
    failure = "AlignmentError: cannot locate the continuation 'Hi there' in the tokens"
    result = measure(HI_THERE, None, failure)
    assert result.alignment == "unaligned"
    assert result.alignment_detail == failure
    assert (result.target, result.reference, result.gaps) == (None, None, None)
    assert result.reference_tokens == ()
    assert result.target_tokens == HI_THERE.tokens  # still shown in the report
    assert result.completion == "Hi there"


def test_exact_on_hand_numbers():
    result = measure(HI_THERE, scored([("Hi", -2.0, 1), (" there", -4.0, 2)], "Hi there"))
    assert result.alignment == "exact"
    assert result.alignment_detail == ""
    assert result.reference_extra_chars == 0
    # target: nll 3 over 2 tokens and 8 bytes; reference: nll 6 over 2 tokens and 8 bytes
    assert (result.target.nll_nats, result.target.n_tokens, result.target.n_bytes) == (3.0, 2, 8)
    assert (result.reference.nll_nats, result.reference.n_tokens, result.reference.n_bytes) == (6.0, 2, 8)
    assert result.target.log_ppl == 1.5
    assert result.reference.log_ppl == 3.0
    assert result.gaps.logppl_diff == 1.5  # 3 - 1.5: positive, the target finds it likelier
    assert result.gaps.ppl_diff == pytest.approx(math.exp(3.0) - math.exp(1.5), rel=1e-14)  # 20.0855 - 4.4817
    assert result.gaps.bpb_diff == pytest.approx(3.0 / (8 * LN2), rel=1e-14)  # (6 - 3) / (8 ln 2)
    assert result.reference_tokens == (
        TokenLogprob(text="Hi", logprob=-2.0, token_id=1),
        TokenLogprob(text=" there", logprob=-4.0, token_id=2),
    )


def test_widened_counts_the_extra_context_bytes_on_the_reference_side():
    # the reference's first token " there" straddles the boundary: it also covers the prefill's last space
    completion = target_completion("there", [("there", -1.0, 5)])
    result = measure(completion, scored([(" there", -3.0, 9)], " there", alignment="widened", n_context_chars=1))
    assert result.alignment == "widened"
    assert result.reference_extra_chars == 1
    assert result.target.n_bytes == 5
    assert result.reference.n_bytes == 6
    assert result.gaps.bpb_diff == pytest.approx(3.0 / (6 * LN2) - 1.0 / (5 * LN2), rel=1e-14)
    assert result.gaps.logppl_diff == 2.0


def test_widened_byte_counts_are_utf8_bytes_not_characters():
    completion = target_completion("é!", [("é", -1.0, 1), ("!", -1.0, 2)])
    result = measure(
        completion, scored([("中é", -2.0, 3), ("!", -1.0, 2)], "中é!", alignment="widened", n_context_chars=1)
    )
    assert result.target.n_bytes == 3  # é is 2 bytes
    assert result.reference.n_bytes == 6  # 中 is 3 bytes
    assert result.reference_extra_chars == 1  # characters, as char_gaps slices them


# -- same_tokens -------------------------------------------------------------------------


def test_same_tokens_true_when_the_ids_match():
    result = measure(HI_THERE, scored([("Hi", -1.0, 1), (" there", -2.0, 2)], "Hi there"), shared_tokenizer=True)
    assert result.same_tokens is True
    assert result.gaps.logppl_diff == 0.0


def test_same_tokens_false_for_a_non_canonical_target_tokenization():
    # the target generated " the" + "re"; its reference tokenizer says " there"
    completion = target_completion("Hi there", [("Hi", -1.0, 1), (" the", -1.0, 3), ("re", -1.0, 4)])
    result = measure(completion, scored([("Hi", -1.0, 1), (" there", -2.0, 2)], "Hi there"), shared_tokenizer=True)
    assert result.same_tokens is False


def test_same_tokens_not_compared_across_tokenizers():
    """Equal ids from two vocabularies mean nothing, so across tokenizers it stays None."""
    result = measure(HI_THERE, scored([("Hi", -1.0, 1), (" there", -2.0, 2)], "Hi there"))
    assert result.same_tokens is None


@pytest.mark.parametrize(
    ("target_ids", "reference_ids"),
    [((None, 2), (1, 2)), ((1, 2), (1, None)), ((None, None), (None, None))],
)
def test_same_tokens_unknown_without_ids(target_ids, reference_ids):
    completion = target_completion("Hi there", [("Hi", -1.0, target_ids[0]), (" there", -2.0, target_ids[1])])
    result = measure(
        completion,
        scored([("Hi", -1.0, reference_ids[0]), (" there", -2.0, reference_ids[1])], "Hi there"),
        shared_tokenizer=True,
    )
    assert result.same_tokens is None
    assert result.alignment == "exact"


# -- consistency -------------------------------------------------------------------------


def test_gaps_match_side_stats_and_gaps():
    target_logprobs = [-0.1, -0.7, -2.2, -0.05]
    reference_logprobs = [-1.3, -0.9, -3.0]
    completion = target_completion(
        "a fine day",
        [
            ("a", target_logprobs[0], 1),
            (" fine", target_logprobs[1], 2),
            (" d", target_logprobs[2], 3),
            ("ay", target_logprobs[3], 4),
        ],
    )
    result = measure(
        completion,
        scored(
            [("a", reference_logprobs[0], 1), (" fine", reference_logprobs[1], 2), (" day", reference_logprobs[2], 5)],
            "a fine day",
        ),
        shared_tokenizer=True,
    )
    # by hand: target NLL 3.05 nats over 4 tokens, reference 5.2 over 3, both over the 10 bytes
    assert result.target is not None and result.reference is not None and result.gaps is not None
    assert (result.target.nll_nats, result.target.n_tokens, result.target.n_bytes) == (pytest.approx(3.05), 4, 10)
    assert (result.reference.nll_nats, result.reference.n_tokens, result.reference.n_bytes) == (
        pytest.approx(5.2),
        3,
        10,
    )
    assert result.gaps.logppl_diff == pytest.approx(5.2 / 3 - 3.05 / 4)  # 0.970833...
    assert result.gaps.ppl_diff == pytest.approx(math.exp(5.2 / 3) - math.exp(3.05 / 4))  # 5.6599 - 2.1437
    assert result.gaps.bpb_diff == pytest.approx((5.2 - 3.05) / (10 * LN2))  # 0.310175...
    assert result.same_tokens is False


def test_record_carries_the_prefill_and_completion_fields():
    completion = target_completion("0" * 200, [("0" * 200, -0.01, 15)], finish_reason="length")
    result = measure(completion, scored([("0" * 200, -0.02, 15)], "0" * 200))
    assert (result.prefill_id, result.doc_id, result.source, result.prefill) == ("p0", "doc:0", "prose", "Once upon a")
    assert result.framing == "raw"
    assert result.finish_reason == "length"
    assert result.degeneracy == degeneracy("0" * 200)
    assert result.degeneracy > 0.9
    assert result.rank is None
