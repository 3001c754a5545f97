"""Keep every test out of the user's real cache and key environment."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check values, not speed; a loaded machine (CI runs beside vLLM) must not fail them.
settings.register_profile("blackbox-audit", deadline=None)
settings.load_profile("blackbox-audit")


REPO = Path(__file__).resolve().parent.parent
KEY_VARIABLES = (
    "BLACKBOX_AUDIT_TARGET_API_KEY",
    "BLACKBOX_AUDIT_REFERENCE_API_KEY",
    "BLACKBOX_AUDIT_API_KEY",
    "OPENAI_API_KEY",
)
"""Every variable the tool reads a key from (blackbox_audit.config.api_key_variables)."""


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BLACKBOX_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def fake_server(tmp_path_factory):
    """An instant vLLM-like server (bench/fakeserver.py) with a BPE tokenizer trained here: its
    base URL. It generates, tokenizes and scores any text; GET /stats counts its requests."""
    from tests.unit.test_tokenizer import save, train_tokenizer

    folder = tmp_path_factory.mktemp("fake-server")
    ready = folder / "port"
    model_dir = save(train_tokenizer(320), folder / "model")
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeserver", "--tokenizer", str(model_dir), "--ready-file", str(ready)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert server.poll() is None and time.monotonic() < deadline, "fake server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{ready.read_text().strip()}/v1"
    finally:
        server.terminate()
        server.wait(timeout=10)
