"""Several prompts in one request, and concurrent awaits that raise one error."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import anyio

from providers.errors import first_error


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await concurrently; on failure raise the first error itself, not an ExceptionGroup."""
    results: list[Any] = [None] * len(awaitables)

    async def run(i: int, aw: Awaitable[Any]) -> None:
        results[i] = await aw

    try:
        async with anyio.create_task_group() as tg:
            for i, aw in enumerate(awaitables):
                tg.start_soon(run, i, aw)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results


SERVED_FIELDS = ("model", "system_fingerprint")
"""Top-level fields of a generation answer that say which model answered (`Wire.served`)."""


def merge_prompts(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """One /v1/completions body for several prompts with otherwise equal settings."""
    if len(bodies) == 1:
        return bodies[0]
    merged = {k: v for k, v in bodies[0].items() if k != "prompt"}
    merged["prompt"] = [b["prompt"] for b in bodies]
    return merged


def split_choices(payload: Any, k: int, n: int) -> list[Any]:
    """Per-prompt payloads from a batched answer (choice index = prompt * n + j)."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or len(choices) != k * n:
        return [payload] * k  # each part then fails validation with a precise message
    parts: list[list[Any]] = [[] for _ in range(k)]
    for choice in choices:
        index = choice.get("index") if isinstance(choice, dict) else None
        if not isinstance(index, int) or not 0 <= index < k * n:
            return [payload] * k
        parts[index // n].append({**choice, "index": index % n})
    # The server's identity belongs to every part (a cached part is read back alone); usage is the batch's.
    served = {k: payload[k] for k in SERVED_FIELDS if k in payload}
    return [{**served, "choices": part} for part in parts]


def groups_of_equal_settings(indices: list[int], plans: list[tuple[str, dict[str, Any]]], size: int) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i in indices:
        settings = repr(sorted((k, v) for k, v in plans[i][1].items() if k != "prompt"))
        groups.setdefault(settings, []).append(i)
    return [g[s : s + size] for g in groups.values() for s in range(0, len(g), size)]
