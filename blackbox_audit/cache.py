"""The on-disk response cache (diskcache/SQLite), private to the user.

Values are the raw JSON answers of successful, validated requests; keys come from
`providers.cache_key` and never contain the API key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

CACHE_DIR_ENV = "BLACKBOX_AUDIT_CACHE_DIR"


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

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
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

    def get(self, key: str) -> Any | None:
        raw = self._cache.get(key)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._cache.set(key, json.dumps(value, separators=(",", ":")))

    def stats(self) -> CacheStats:
        size = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        return CacheStats(directory=self.directory, entries=len(self._cache), size_bytes=size)

    def clear(self) -> int:
        return self._cache.clear()

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
