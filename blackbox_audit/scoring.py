"""Stage 3: the reference scores each completion's bytes, conditioned on the same context: the
prompt the target was given (in chat framing, the same messages under the reference's own
chat template)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from blackbox_audit.pool import chunked, map_bounded
from blackbox_audit.records import TargetCompletion
from providers.errors import AlignmentError
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ScoredContinuation, ScoreRequest


@dataclass(frozen=True)
class ReferenceOutcome:
    """The reference's scores for one completion, or why there are none."""

    scored: ScoredContinuation | None
    failure: str = ""


async def score_completions(
    reference: OpenAICompatibleProvider,
    completions: Sequence[TargetCompletion],
    *,
    batch_size: int,
    workers: int,
    advance: Callable[[int], None] | None = None,
) -> list[ReferenceOutcome]:
    def request(completion: TargetCompletion) -> ScoreRequest:
        return ScoreRequest(context=completion.prompt, continuation=completion.completion)

    async def score_one(completion: TargetCompletion) -> ReferenceOutcome:
        try:
            return ReferenceOutcome((await reference.score_many([request(completion)]))[0])
        except AlignmentError as exc:
            return ReferenceOutcome(None, str(exc))

    async def run(chunk: Sequence[TargetCompletion]) -> list[ReferenceOutcome]:
        """One batched request; if any completion of it cannot be aligned, each is scored alone
        so that only that one is marked unaligned."""
        scorable = [c for c in chunk if c.completion]
        try:
            outcomes = [ReferenceOutcome(s) for s in await reference.score_many([request(c) for c in scorable])]
        except AlignmentError:
            outcomes = [await score_one(c) for c in scorable]
        scored = iter(outcomes)
        return [next(scored) if c.completion else ReferenceOutcome(None, "empty completion") for c in chunk]

    chunks = await map_bounded(chunked(completions, batch_size), run, workers=workers, advance=advance, weight=len)
    return [o for chunk in chunks for o in chunk]
