"""The sentinel's comparison and its summary lines (blackbox_audit.sentinel)."""

from __future__ import annotations

import pytest

from blackbox_audit.sentinel import ModelCheck, SentinelCheck, ServedChange, compare
from providers.records import ServedModel
from tests.factories import target_completion, token_logprobs

FIRST = [(" upon", -0.5, 11), (" a", -0.25, 12), (" time", -1.0, 13)]


def _first():
    return target_completion(" upon a time", FIRST)


def test_the_same_answer_has_not_moved():
    check = compare(_first(), " upon a time", token_logprobs(FIRST), greedy=True)
    assert check.checked and not check.moved and check.same_text
    assert check.tokens_compared == 3 and check.max_abs_diff == 0.0
    assert check.max_allowed == pytest.approx(256 * 2**-24 * 100)  # fp32 tolerance at |logit| 100: 1.5e-3
    assert ModelCheck(sentinel=check, served=ServedChange()).warnings() == []


def test_fp32_noise_is_not_a_move_but_a_shift_is():
    noisy = [(t, lp + 1e-5, i) for t, lp, i in FIRST]
    assert not compare(_first(), " upon a time", token_logprobs(noisy), greedy=True).moved
    shifted = [(" upon", -0.5, 11), (" a", -0.35, 12), (" time", -1.0, 13)]
    check = compare(_first(), " upon a time", token_logprobs(shifted), greedy=True)
    assert check.moved and check.same_text and check.max_abs_diff == pytest.approx(0.1)
    assert check.mean_abs_diff == pytest.approx(0.1 / 3)
    (line,) = ModelCheck(sentinel=check, served=ServedChange()).warnings()
    assert "moved by up to 0.1 nats (fp32 noise allows 0.0015)" in line and "p0" in line


def test_another_greedy_text_is_a_move_even_where_the_shared_tokens_agree():
    other = [(" upon", -0.5, 11), (" a", -0.25, 12), (" hill", -1.2, 14)]
    check = compare(_first(), " upon a hill", token_logprobs(other), greedy=True)
    assert check.moved and check.same_text is False and check.tokens_compared == 2
    (line,) = ModelCheck(sentinel=check, served=ServedChange()).warnings()
    assert "with another text (greedy)" in line


def test_a_sampled_audit_compares_the_shared_tokens_only():
    other = [(" upon", -0.5, 11), (" a", -0.25, 12), (" hill", -1.2, 14)]
    check = compare(_first(), " upon a hill", token_logprobs(other), greedy=False)
    assert not check.moved and check.tokens_compared == 2 and check.detail.startswith("2 of 3 tokens")
    nothing_shared = compare(_first(), " hello", token_logprobs([(" hello", -3.0, 99)]), greedy=False)
    assert not nothing_shared.moved and nothing_shared.tokens_compared == 0 and nothing_shared.max_abs_diff is None


def test_a_changed_served_model_is_one_line():
    start = ServedModel(model="gpt-x-2025-01-01", system_fingerprint="fp_a")
    served = ServedChange(first=start, last=start.model_copy(update={"system_fingerprint": "fp_b"}))
    assert served.changed and not ServedChange(first=start, last=start).changed
    assert not ServedChange(first=None, last=start).changed  # nothing to compare with
    (line,) = ModelCheck(sentinel=SentinelCheck(checked=False), served=served).warnings()
    assert "'fp_a'" in line and "'fp_b'" in line
