"""How the pipeline tells its caller what is happening without knowing how it is shown: the CLI
draws progress bars and prints retry lines (`blackbox_audit.terminal`); a Python caller passes
its own hooks, or gets none but warnings."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from providers.http import RetryEvent

Advance = Callable[[int], None]
"""Called with how many more units of a stage are done."""


class Hooks(Protocol):
    def stage(self, name: str, total: int, unit: str) -> AbstractContextManager[Advance]:
        """Open while a stage of `total` units runs; yields its `Advance`."""
        ...

    def retry(self, event: RetryEvent) -> None:
        """An attempt failed and will be retried."""
        ...

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the audit."""
        ...


class QuietHooks:
    """No progress, no retry lines; warnings go to Python's `warnings`."""

    @contextmanager
    def stage(self, name: str, total: int, unit: str) -> Iterator[Advance]:
        yield lambda n: None

    def retry(self, event: RetryEvent) -> None:
        pass

    def warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=3)
