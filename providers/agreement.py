"""When two fp32 computations of the same logprobs agree: a tolerance from fp32 arithmetic,
not from one machine's measurement.

A logprob is a logit minus the log-sum-exp of all logits. Both are fp32 results of the
same depth of matrix products, whose rounding errors are relative: each lands within some
number of units in the last place (ulps) of the scale of the numbers involved, the largest
|logit| S of the forward pass. Two correct implementations (vLLM's kernels and
transformers', or one kernel set on an AVX-512 CPU and another on an AVX2 one) sum in
different orders, so each lies some ulps of S from the exact value and they lie within the
sum of the two of each other. This is also why a model with larger logits shows larger
differences: Gemma 3 270M reaches |logit| ~ 100 (embeddings scaled by sqrt(640) and a
262k-entry log-sum-exp), SmolLM2-135M ~ 40, so the same relative error is 2.5x larger in
nats. It does not grow with |logprob| itself: an unlikely token's logprob is as exact as
the two large numbers it is the difference of.

Measured (`python -m bench.kernel_spread`, in docs/local-vllm.md): against a float64
forward pass, fp32 implementations (vLLM; transformers with AVX-512, AVX2-only or scalar
kernels) stay within 3-17 ulps of S per token and 0.4-3.6 ulps of S on average; across
CPUs, vLLM against transformers was seen at up to 27 ulps of S per token and 7 on average
(on an AVX2-only CPU: Gemma 1.5e-4 nats, SmolLM2 6.4e-5). The bounds below allow about 10x
the worst per-token and 5x the worst mean difference seen: for Gemma 3 (S ~ 100) 1.5e-3 and
1.9e-4 nats, for SmolLM2 (S ~ 40) 6e-4 and 7.6e-5.

A real bug is nowhere near: a logprob shifted by one token, a template token scored in
place of a completion token, or a wrong span compares logprobs of different tokens, and
the mean absolute difference is then of the order of nats (10^4 times the mean bound);
bf16 arithmetic in place of fp32 moves logprobs by up to 0.1 nats. The mean catches a
uniform error, the max a single wrong token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

FP32_UNIT_ROUNDOFF = 2.0**-24
MAX_ULPS_OF_SCALE = 256
MEAN_ULPS_OF_SCALE = 32


@dataclass(frozen=True)
class LogprobAgreement:
    """How two lists of logprobs of the same tokens differ, and whether that is fp32 noise."""

    n_tokens: int
    max_abs_nats: float
    mean_abs_nats: float
    logit_scale: float

    @property
    def max_allowed_nats(self) -> float:
        return MAX_ULPS_OF_SCALE * FP32_UNIT_ROUNDOFF * self.logit_scale

    @property
    def mean_allowed_nats(self) -> float:
        return MEAN_ULPS_OF_SCALE * FP32_UNIT_ROUNDOFF * self.logit_scale

    @property
    def ok(self) -> bool:
        return self.max_abs_nats <= self.max_allowed_nats and self.mean_abs_nats <= self.mean_allowed_nats

    def __str__(self) -> str:
        return (
            f"{self.n_tokens} tokens: max |diff| {self.max_abs_nats:.2e} nats (allowed {self.max_allowed_nats:.2e}),"
            f" mean {self.mean_abs_nats:.2e} (allowed {self.mean_allowed_nats:.2e}); largest |logit| {self.logit_scale:.1f}"
        )


def compare_logprobs(observed: Sequence[float], expected: Sequence[float], *, logit_scale: float) -> LogprobAgreement:
    """`observed` and `expected` are logprobs of the same tokens; `logit_scale` is the largest
    |logit| of the forward pass that produced them (the ground truth reports it)."""
    if len(observed) != len(expected):
        raise ValueError(f"{len(observed)} logprobs against {len(expected)}: not the same tokens")
    if not observed:
        raise ValueError("no logprobs to compare")
    if not (math.isfinite(logit_scale) and logit_scale > 0):
        raise ValueError(f"logit_scale must be a positive number, got {logit_scale!r}")
    diffs = [abs(a - b) for a, b in zip(observed, expected, strict=True)]
    return LogprobAgreement(len(diffs), max(diffs), fmean(diffs), logit_scale)
