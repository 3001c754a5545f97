"""The fp32 agreement rule: bounds scale with the logit scale, and a shifted token fails."""

from __future__ import annotations

import pytest

from providers.agreement import (
    FP32_UNIT_ROUNDOFF,
    MAX_ULPS_OF_SCALE,
    MEAN_ULPS_OF_SCALE,
    compare_logprobs,
)


def test_bounds_are_ulps_of_the_logit_scale():
    result = compare_logprobs([-1.0], [-1.0], logit_scale=64.0)
    assert result.max_allowed_nats == pytest.approx(MAX_ULPS_OF_SCALE * 64.0 * 2**-24)
    assert result.mean_allowed_nats == pytest.approx(MEAN_ULPS_OF_SCALE * 64.0 * 2**-24)
    assert FP32_UNIT_ROUNDOFF == 2**-24
    # 256 ulps of 64 is 2^8 * 2^6 * 2^-24 = 2^-10; 32 ulps is 2^-13
    assert result.max_allowed_nats == 2**-10 and result.mean_allowed_nats == 2**-13


def test_hand_checked_differences():
    result = compare_logprobs([-1.0, -2.0, -3.0, -4.0], [-1.0, -2.0004, -3.0, -3.9998], logit_scale=100.0)
    assert result.n_tokens == 4
    assert result.max_abs_nats == pytest.approx(4e-4)
    assert result.mean_abs_nats == pytest.approx((4e-4 + 2e-4) / 4)
    assert result.ok  # 4e-4 <= 1.53e-3 and 1.5e-4 <= 1.91e-4


def test_one_wrong_token_fails_on_the_max_even_when_the_mean_passes():
    expected = [-1.0] * 200
    observed = [-1.0] * 199 + [-1.01]
    result = compare_logprobs(observed, expected, logit_scale=100.0)
    assert result.mean_abs_nats <= result.mean_allowed_nats
    assert result.max_abs_nats > result.max_allowed_nats and not result.ok


def test_a_uniform_small_error_fails_on_the_mean():
    """bf16 arithmetic moves every logprob a little: under the max bound, over the mean one."""
    expected = [-2.0] * 50
    observed = [-2.0 + 1e-3] * 50
    result = compare_logprobs(observed, expected, logit_scale=100.0)
    assert result.max_abs_nats <= result.max_allowed_nats and not result.ok


def test_a_shift_by_one_token_is_far_beyond_both_bounds():
    logprobs = [-0.1, -5.2, -0.01, -3.3, -7.9, -0.4, -2.2, -0.05]
    result = compare_logprobs(logprobs[1:], logprobs[:-1], logit_scale=40.0)
    assert result.mean_abs_nats > 1000 * result.mean_allowed_nats


@pytest.mark.parametrize(
    ("observed", "expected", "scale", "message"),
    [
        ([-1.0], [-1.0, -2.0], 10.0, "not the same tokens"),
        ([], [], 10.0, "no logprobs"),
        ([-1.0], [-1.0], 0.0, "positive"),
    ],
)
def test_refuses_what_cannot_be_compared(observed, expected, scale, message):
    with pytest.raises(ValueError, match=message):
        compare_logprobs(observed, expected, logit_scale=scale)
