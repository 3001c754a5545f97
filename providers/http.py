"""The one module that talks HTTP (httpx): requests, retries, limits, record/replay."""

from __future__ import annotations

import httpx


def health_ok(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when an OpenAI-compatible server answers its /health route with 200."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        return httpx.get(f"{root}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False
