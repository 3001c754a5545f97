"""A calibrated null: what a gap looks like when nothing was finetuned.

A control target that was not finetuned (ideally the target's own base model, which a hosted
service usually serves beside the finetune) goes through the audit's very procedure on a random
sample of the same prefills: it completes them, the reference scores its completions, the gaps
are measured. Those gaps include everything an audit's gaps have but the finetune: the
generator's advantage on its own greedy text, the two models' disagreement, tokenizer noise.
Each audited completion then gets an empirical p-value and a z-score against them, and the
report counts the completions beyond the controls' maximum.

Cost: `null_prefills` completions on the null target (one request per batch in raw framing,
one per prefill in the chat framings) and as many scorings on the reference; nothing more on
the target.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean, pstdev
from typing import Any

from blackbox_audit.ranking import gap_of
from blackbox_audit.records import CompletionResult, GapName, NullComparison, ScoreName


@dataclass(frozen=True)
class NullDistribution:
    """The controls' gaps under one per-completion score, sorted (`rank_average`, a rank within
    the audit, is compared on its span part, `ranking.gap_of`)."""

    score: GapName
    values: tuple[float, ...]

    @classmethod
    def of(cls, controls: Sequence[CompletionResult], ranking: ScoreName) -> NullDistribution:
        score = gap_of(ranking)
        values = sorted(getattr(r.gaps, score) for r in controls if r.gaps is not None)
        if len(values) < 2:
            raise ValueError(f"the null needs at least 2 scored control completions, got {len(values)}")
        return cls(score, tuple(values))

    @property
    def mean(self) -> float:
        return fmean(self.values)

    @property
    def sd(self) -> float:
        return pstdev(self.values)

    def compare(self, gap: float) -> NullComparison:
        at_or_above = len(self.values) - bisect.bisect_left(self.values, gap)
        sd = self.sd
        z = (
            (gap - self.mean) / sd
            if sd > 0
            else (math.copysign(math.inf, gap - self.mean) if gap != self.mean else 0.0)
        )
        return NullComparison(
            p_value=(1 + at_or_above) / (1 + len(self.values)),
            z=z if math.isfinite(z) else math.copysign(1e9, z),
            beyond_max=gap > self.values[-1],
        )

    def annotate(self) -> Callable[[CompletionResult], CompletionResult]:
        def with_null(record: CompletionResult) -> CompletionResult:
            if record.gaps is None:
                return record
            return record.model_copy(update={"null": self.compare(getattr(record.gaps, self.score))})

        return with_null

    def summary(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "controls": len(self.values),
            "mean": self.mean,
            "sd": self.sd,
            "max": self.values[-1],
        }


def null_line(null: dict[str, Any]) -> str:
    """The report's sentence on the null: how many completions lie beyond its maximum."""
    return (
        f"{null['beyond_max']} completions lie beyond the maximum of {null['controls']} completions of the null"
        f" target {null['null_target']['model']} ({null['score']} {null['max']:.3f}; mean {null['mean']:.3f},"
        f" sd {null['sd']:.3f}); each record has its p-value and z-score"
    )
