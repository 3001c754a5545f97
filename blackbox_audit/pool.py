"""A bounded worker pool: a fixed number of workers pull work items, so 100k items never
become 100k tasks at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from providers.errors import first_error

T = TypeVar("T")
R = TypeVar("R")


async def map_bounded(
    items: Sequence[T],
    work: Callable[[T], Awaitable[R]],
    *,
    workers: int,
    advance: Callable[[int], None] | None = None,
    weight: Callable[[T], int] = lambda item: 1,
) -> list[R]:
    """`work` over `items` with at most `workers` in flight; results in input order.

    The first error cancels the rest and is raised as itself, not as an ExceptionGroup.
    """
    results: list[R | None] = [None] * len(items)
    send, receive = anyio.create_memory_object_stream[tuple[int, T]](max_buffer_size=workers)

    async def feed() -> None:
        async with send:
            for i, item in enumerate(items):
                await send.send((i, item))

    async def worker(stream) -> None:
        async with stream:
            async for i, item in stream:
                results[i] = await work(item)
                if advance is not None:
                    advance(weight(item))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            for _ in range(max(1, min(workers, len(items)))):
                tg.start_soon(worker, receive.clone())
            receive.close()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results  # type: ignore[return-value]


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
