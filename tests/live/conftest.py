"""Live tests need the local vLLM servers (blackbox-audit local-vllm up). They skip, saying
so, when a server is down, unless BLACKBOX_AUDIT_REQUIRE_LIVE=1 (as in CI), where they fail."""

from __future__ import annotations

import os

import pytest

from blackbox_audit import local_vllm
from providers.http import health_ok

LIVE_KEYS = ("smollm2", "gemma3")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/live/" in str(item.fspath):
            item.add_marker(pytest.mark.live)


def require_server(key: str) -> local_vllm.LocalModel:
    model = local_vllm.MODELS[key]
    if not health_ok(model.base_url):
        message = (
            f"the local vLLM server for {key} is not running at {model.base_url}: run `blackbox-audit local-vllm up`"
        )
        if os.environ.get("BLACKBOX_AUDIT_REQUIRE_LIVE") == "1":
            pytest.fail(message)
        pytest.skip(reason=message)
    return model


@pytest.fixture(params=LIVE_KEYS)
def live_model(request) -> local_vllm.LocalModel:
    return require_server(request.param)
