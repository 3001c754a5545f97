"""The bounded worker pool: order, concurrency bound, errors, chunking."""

from __future__ import annotations

import anyio
import pytest

from blackbox_audit.pool import chunked, map_bounded

pytestmark = pytest.mark.anyio


class InFlight:
    def __init__(self):
        self.now = 0
        self.peak = 0

    async def work(self, item: int) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            # later items finish first, so results arrive out of order
            await anyio.sleep(0.001 * (1 + item % 5))
            await anyio.sleep(0)
            return item * 10
        finally:
            self.now -= 1


async def test_results_keep_input_order():
    items = list(range(23))
    assert await map_bounded(items, InFlight().work, workers=4) == [i * 10 for i in items]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
async def test_never_more_than_workers_in_flight(workers):
    tracker = InFlight()
    await map_bounded(list(range(30)), tracker.work, workers=workers)
    assert tracker.peak == workers  # bounded, and the bound is actually used
    assert tracker.now == 0


async def test_fewer_items_than_workers():
    tracker = InFlight()
    assert await map_bounded([1, 2], tracker.work, workers=8) == [10, 20]
    assert tracker.peak <= 2


async def test_zero_items():
    async def never(item):
        pytest.fail("no item, no work")

    assert await map_bounded([], never, workers=4) == []


async def test_first_error_is_raised_itself_and_stops_the_rest():
    started: list[int] = []

    async def work(item: int) -> int:
        started.append(item)
        if item == 3:
            raise KeyError("item 3 is broken")
        await anyio.sleep(0.01)
        return item

    with pytest.raises(KeyError, match="item 3 is broken") as info:
        await map_bounded(list(range(100)), work, workers=2)
    assert type(info.value) is KeyError  # not an ExceptionGroup
    assert len(started) < 100  # the rest were cancelled, not all run


async def test_error_from_the_only_item():
    async def work(item):
        raise ValueError(f"bad {item}")

    with pytest.raises(ValueError, match="bad x") as info:
        await map_bounded(["x"], work, workers=3)
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_progress_advances_by_weight():
    advanced: list[int] = []
    await map_bounded(
        [[1, 2], [3], [4, 5, 6]], lambda chunk: _echo(chunk), workers=2, advance=advanced.append, weight=len
    )
    assert sorted(advanced) == [1, 2, 3] and sum(advanced) == 6


async def _echo(value):
    await anyio.sleep(0)
    return value


@pytest.mark.parametrize(
    ("items", "size", "expected"),
    [
        (list(range(10)), 4, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]),
        (list(range(8)), 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        ([1, 2], 5, [[1, 2]]),
        ([1, 2, 3], 1, [[1], [2], [3]]),
        ([], 3, []),
    ],
)
def test_chunked(items, size, expected):
    assert chunked(items, size) == expected


def test_chunked_keeps_the_sequence_type_and_every_item():
    items = tuple(range(7))
    chunks = chunked(items, 3)
    assert all(isinstance(c, tuple) for c in chunks)
    assert [x for c in chunks for x in c] == list(items)
