"""What replay tests share: fault servers replaying a recorded audit's two endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.replay.faultserver import FaultServer


@pytest.fixture
def servers():
    """servers(directory) -> (target, reference) fault servers replaying that recorded audit."""
    started: list[FaultServer] = []

    def start(directory: Path) -> tuple[FaultServer, FaultServer]:
        pair = (FaultServer(directory / "target").start(), FaultServer(directory / "reference").start())
        started.extend(pair)
        return pair

    yield start
    for server in started:
        server.stop()
