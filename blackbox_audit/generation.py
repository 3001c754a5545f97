"""Stage 2: the target completes each prefill; its per-token logprobs come from the same call."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from blackbox_audit.pool import chunked, map_bounded
from blackbox_audit.records import Framing, Prefill, TargetCompletion
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ChatMessage, GenerateRequest, Prompt


def framed_prompt(prefill: str, framing: Framing, *, system_prompt: str, user_prompt: str) -> Prompt:
    """raw: the prefill alone. chat: system + user messages, the prefill opening the assistant turn."""
    if framing == "raw":
        return prefill
    messages = [ChatMessage(role="user", content=user_prompt), ChatMessage(role="assistant", content=prefill)]
    if system_prompt:
        messages.insert(0, ChatMessage(role="system", content=system_prompt))
    return tuple(messages)


async def generate_completions(
    target: OpenAICompatibleProvider,
    prefills: Sequence[Prefill],
    *,
    framing: Framing,
    system_prompt: str,
    user_prompt: str,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int,
    workers: int,
    progress: tqdm | None = None,
) -> list[TargetCompletion]:
    def request(prefill: Prefill) -> GenerateRequest:
        prompt = framed_prompt(prefill.text, framing, system_prompt=system_prompt, user_prompt=user_prompt)
        return GenerateRequest(prompt=prompt, max_tokens=max_new_tokens, temperature=temperature, seed=seed)

    async def run(chunk: Sequence[Prefill]) -> list[TargetCompletion]:
        generations = await target.generate_many([request(p) for p in chunk])
        out = []
        for prefill, generation in zip(chunk, generations, strict=True):
            completion = generation.completions[0]
            out.append(
                TargetCompletion(
                    prefill=prefill,
                    framing=framing,
                    completion=completion.text,
                    tokens=completion.tokens,
                    finish_reason=completion.finish_reason,
                )
            )
        return out

    chunks = await map_bounded(chunked(prefills, batch_size), run, workers=workers, progress=progress, weight=len)
    return [c for chunk in chunks for c in chunk]
