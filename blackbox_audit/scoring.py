"""Stage 3: the reference scores each completion's bytes, conditioned on the same context: the
prompt the target was given (in chat framing, the same messages under the reference's own
chat template). A target that can score given text is asked the same way for a statement's
(`blackbox_audit.inquiry`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from blackbox_audit.pool import chunked, map_bounded
from blackbox_audit.records import TargetCompletion
from providers.errors import AlignmentError
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ScoredContinuation, ScoreRequest


@dataclass(frozen=True)
class ScoreOutcome:
    """One model's scores for one text, or why there are none."""

    scored: ScoredContinuation | None
    failure: str = ""


async def score_completions(
    reference: OpenAICompatibleProvider,
    completions: Sequence[TargetCompletion],
    *,
    batch_size: int,
    workers: int,
    advance: Callable[[int], None] | None = None,
) -> list[ScoreOutcome]:
    requests = [
        ScoreRequest(context=c.prompt, continuation=c.completion) if c.completion else None for c in completions
    ]
    return await score_requests(reference, requests, batch_size=batch_size, workers=workers, advance=advance)


async def score_requests(
    provider: OpenAICompatibleProvider,
    requests: Sequence[ScoreRequest | None],
    *,
    batch_size: int,
    workers: int,
    advance: Callable[[int], None] | None = None,
) -> list[ScoreOutcome]:
    """Each text scored after its context, several to a request; a text whose tokens cannot be
    aligned fails alone (its batch is rescored one by one). None stands for an empty text."""

    async def score_one(request: ScoreRequest) -> ScoreOutcome:
        try:
            return ScoreOutcome((await provider.score_many([request]))[0])
        except AlignmentError as exc:
            return ScoreOutcome(None, str(exc))

    async def run(chunk: Sequence[ScoreRequest | None]) -> list[ScoreOutcome]:
        scorable = [r for r in chunk if r is not None]
        try:
            scored = iter([ScoreOutcome(s) for s in await provider.score_many(scorable)])
        except AlignmentError:
            scored = iter([await score_one(r) for r in scorable])
        return [next(scored) if r is not None else ScoreOutcome(None, "empty completion") for r in chunk]

    chunks = await map_bounded(chunked(requests, batch_size), run, workers=workers, advance=advance, weight=len)
    return [o for chunk in chunks for o in chunk]
