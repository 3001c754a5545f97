"""Keep every test out of the user's real cache and key environment."""

from __future__ import annotations

import pytest
from hypothesis import settings

# Property tests check values, not speed; a loaded machine (CI runs beside vLLM) must not fail them.
settings.register_profile("blackbox-audit", deadline=None)
settings.load_profile("blackbox-audit")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BLACKBOX_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "BLACKBOX_AUDIT_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend():
    return "asyncio"
