"""Cache keys: an allowlist over the fields that change the answer; never the API key."""

from __future__ import annotations

import base64
import os
import stat

import httpx
import pytest

from blackbox_audit.cache import ResponseCache
from providers.cache_key import ANSWER_FIELDS, cache_key
from providers.http import HttpClient

pytestmark = pytest.mark.anyio

BODY = {"model": "m", "prompt": [1, 2, 3], "echo": True, "max_tokens": 0, "logprobs": 0}


def key(body, base_url="http://h/v1", path="/completions"):
    return cache_key(base_url, "POST", path, body)[0]


def test_field_order_does_not_matter():
    assert key(BODY) == key(dict(reversed(list(BODY.items()))))


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"prompt": [1, 2, 4]},
        {"echo": False},
        {"max_tokens": 1},
        {"logprobs": 1},
        {"seed": 3},
        {"temperature": 0.7},
        {"n": 2},
        {"stop": ["\n"]},
        {"prompt_logprobs": 0},
    ],
)
def test_every_answer_field_changes_the_key(change):
    assert key({**BODY, **change}) != key(BODY)


def test_base_url_and_path_change_the_key():
    assert key(BODY, base_url="http://other/v1") != key(BODY)
    assert key(BODY, path="/chat/completions") != key(BODY)


def test_unclassified_field_is_refused():
    with pytest.raises(ValueError, match="not classified"):
        key({**BODY, "brand_new_field": 1})


def test_stream_does_not_change_the_key():
    assert key({**BODY, "stream": False}) == key(BODY)


@pytest.mark.parametrize("field", ["api_key", "authorization", "password"])
def test_a_secret_in_a_body_is_never_keyed(field):
    """The allowlist has no place for a credential: a body carrying one is refused, not hashed."""
    assert field not in ANSWER_FIELDS
    with pytest.raises(ValueError, match="not classified"):
        key({**BODY, field: "sk-secret"})


async def test_a_cached_exchange_holds_no_credential(tmp_path):
    """Requests sent with an API key and with a URL's userinfo: the cache's SQLite file and its
    keys hold neither (the base URL keyed is the one without userinfo)."""
    answer = {"choices": [{"index": 0, "text": "ok"}]}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    cache = ResponseCache(tmp_path / "c")
    for api_key, basic in (("sk-bearer-secret", None), (None, ("user", "sk-basic-secret"))):
        http = HttpClient(
            "http://h/v1",
            provider="test",
            api_key=api_key,
            basic_auth=basic,
            cache=cache,
            transport=httpx.MockTransport(handler),
        )
        await http.request("POST", "/completions", {**BODY, "prompt": [len(seen)]}, lambda payload: payload)
        await http.aclose()
    cache.close()
    assert [r.headers["authorization"].split()[0] for r in seen] == ["Bearer", "Basic"], "the credentials were sent"
    stored = b"".join(f.read_bytes() for f in (tmp_path / "c").iterdir())
    assert stored and b"sk-bearer-secret" not in stored and b"sk-basic-secret" not in stored
    assert base64.b64encode(b"user:sk-basic-secret") not in stored


def test_cache_directory_is_private(tmp_path):
    cache = ResponseCache(tmp_path / "private")
    cache.set("k", {"v": 1})
    cache.close()
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700
    for file in (tmp_path / "private").iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) & 0o077 == 0, file
