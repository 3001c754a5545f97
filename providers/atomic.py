"""Files that are either whole or absent: written beside their place, flushed to disk, then
renamed over it (POSIX rename is atomic). The one writer for fixtures and the audit's files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, parts: Iterable[str | bytes]) -> Path:
    """Write `parts` (text as UTF-8) to `path` through a temporary file in the same folder;
    on any failure (a full disk included) the temporary file is removed and `path` is as before."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            for part in parts:
                file.write(part.encode("utf-8") if isinstance(part, str) else part)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path
