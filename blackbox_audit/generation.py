"""Stage 2: the target completes each framed prefill; its per-token logprobs come from the same call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from blackbox_audit.pool import chunked, map_bounded
from blackbox_audit.records import FramedPrefill, TargetCompletion
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import GenerateRequest


async def generate_completions(
    target: OpenAICompatibleProvider,
    framed: Sequence[FramedPrefill],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int,
    workers: int,
    n: int = 1,
    advance: Callable[[int], None] | None = None,
) -> list[TargetCompletion]:
    """`n` completions per prompt, in order (sampled when n > 1: give a temperature). The
    provider sets a stop token apart (it spells no text, and the reference cannot score it), so
    each completion's tokens cover exactly its text, as the reference's will."""

    async def run(chunk: Sequence[FramedPrefill]) -> list[TargetCompletion]:
        requests = [
            GenerateRequest(prompt=item.prompt, max_tokens=max_new_tokens, temperature=temperature, seed=seed, n=n)
            for item in chunk
        ]
        generations = await target.generate_many(requests)
        out: list[TargetCompletion] = []
        for item, generation in zip(chunk, generations, strict=True):
            out.extend(
                TargetCompletion(
                    prefill=item.prefill,
                    framing=item.framing,
                    prompt=item.prompt,
                    completion=completion.text,
                    tokens=completion.tokens,
                    finish_reason=completion.finish_reason,
                    served=generation.served,
                )
                for completion in generation.completions
            )
        return out

    chunks = await map_bounded(chunked(framed, batch_size), run, workers=workers, advance=advance, weight=len)
    return [c for chunk in chunks for c in chunk]
