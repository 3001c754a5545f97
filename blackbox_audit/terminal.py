"""The CLI's hooks: tqdm progress bars on stderr, one line per wave of retries, warnings."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from blackbox_audit.hooks import Advance
from providers.http import RetryEvent

RETRY_WAVE_S = 5.0
"""Retries of one endpoint closer together than this are one wave: one line, not one per request."""


class TerminalHooks:
    def __init__(self, *, progress: bool = True):
        self.progress = progress
        self._last_retry: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, total: int, unit: str) -> Iterator[Advance]:
        bar = tqdm(total=total, desc=name, unit=unit, disable=not self.progress, leave=False)
        try:
            yield bar.update
        finally:
            bar.close()

    def retry(self, event: RetryEvent) -> None:
        if not self.progress:
            return
        now = time.monotonic()
        if now - self._last_retry.get(event.role, -RETRY_WAVE_S) < RETRY_WAVE_S:
            return
        self._last_retry[event.role] = now
        who = f"{event.role}: " if event.role else ""
        error = " ".join(event.error.split())
        tqdm.write(
            f"{who}{error[:160]}; retrying in {event.wait_s:.1f} s (attempt {event.attempt + 1} of {event.max_attempts})",
            file=sys.stderr,
        )

    def warn(self, message: str) -> None:
        tqdm.write(f"warning: {message}", file=sys.stderr)
