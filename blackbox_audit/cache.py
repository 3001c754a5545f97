"""The on-disk response cache (diskcache/SQLite), private to the user.

Values are the raw JSON answers of successful, validated requests; keys come from
`providers.cache_key` and never contain a secret. The cache only ever saves time: when it
fails part-way (a full disk, a file gone read-only), the audit is told once and carries on
without it, with the same results.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

CACHE_DIR_ENV = "BLACKBOX_AUDIT_CACHE_DIR"
DATABASE_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")
_FAILURES = (sqlite3.Error, OSError, diskcache.Timeout)


class CacheError(Exception):
    """The cache folder cannot be used; the message names it and the fix."""

    usage = False  # True when the path given is wrong (exit 2), False when the disk failed (exit 1)


def default_cache_dir() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else platformdirs.user_cache_path("blackbox-audit") / "responses"


@dataclass(frozen=True)
class CacheStats:
    directory: Path
    entries: int
    size_bytes: int


class ResponseCache:
    """diskcache with every value kept inside the SQLite file, so one chmod covers all of it."""

    def __init__(self, directory: Path | None = None, *, on_failure: Callable[[str], None] | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.failed = False
        self._on_failure = on_failure
        if self.directory.exists() and not self.directory.is_dir():
            raise _error(
                f"the cache folder {self.directory} is a file: give a folder (--cache-dir) or --no-cache", usage=True
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            old_umask = os.umask(0o077)
            try:
                self._cache = diskcache.Cache(str(self.directory), disk_min_file_size=2**31 - 1, size_limit=2**40)
            finally:
                os.umask(old_umask)
            for file in self.directory.iterdir():
                if file.is_file():
                    os.chmod(file, 0o600)
        except sqlite3.OperationalError as exc:  # full, read-only or locked: the disk, not the file
            raise _error(
                f"cannot use the cache folder {self.directory}: {exc} (give another --cache-dir, or --no-cache)"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise _error(
                f"the cache in {self.directory} is unreadable ({exc}): `blackbox-audit cache clear` removes it"
            ) from None
        except (OSError, diskcache.Timeout) as exc:
            raise _error(
                f"cannot use the cache folder {self.directory}: {_reason(exc)} (give another --cache-dir, or --no-cache)"
            ) from None

    @classmethod
    def open(cls, directory: Path | None, *, on_failure: Callable[[str], None] | None = None) -> ResponseCache:
        return cls(directory, on_failure=on_failure)

    def _fail(self, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            if self._on_failure is not None:
                self._on_failure(
                    f"the response cache in {self.directory} failed ({_reason(exc)}); carrying on without it:"
                    " results are unaffected, but a rerun will not resume from what follows"
                )

    def get(self, key: str) -> Any | None:
        if self.failed:
            return None
        try:
            raw = self._cache.get(key)
        except _FAILURES as exc:
            self._fail(exc)
            return None
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        if self.failed:
            return
        try:
            self._cache.set(key, json.dumps(value, separators=(",", ":")))
        except _FAILURES as exc:
            self._fail(exc)

    def stats(self) -> CacheStats:
        size = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        return CacheStats(directory=self.directory, entries=len(self._cache), size_bytes=size)

    def clear(self) -> int:
        return self._cache.clear()

    def close(self) -> None:
        try:
            self._cache.close()
        except _FAILURES:
            pass

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_database(directory: Path) -> list[Path]:
    """Delete the cache's SQLite files, for a database too damaged to open and clear."""
    removed = []
    for name in DATABASE_FILES:
        path = directory / name
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _error(message: str, *, usage: bool = False) -> CacheError:
    error = CacheError(message)
    error.usage = usage
    return error
