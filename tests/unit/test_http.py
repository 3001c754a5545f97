"""The HTTP layer: error classification, retries honouring Retry-After, cache behaviour."""

from __future__ import annotations

import json
import ssl

import httpx
import pytest

from blackbox_audit.cache import ResponseCache
from providers import errors
from providers.http import HttpClient, RetryPolicy, parse_retry_after

pytestmark = pytest.mark.anyio

OK_BODY = {"ok": 1}


def scripted(*responses):
    """A transport answering each request with the next scripted response (or raising it)."""
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler), seen


def client(transport, *, cache=None, sleeps=None, api_key=None, attempts=5):
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return HttpClient(
        "http://server.test/v1",
        provider="test",
        api_key=api_key,
        transport=transport,
        cache=cache,
        retry=RetryPolicy(max_attempts=attempts, initial_backoff_s=0.1, max_backoff_s=1.0, jitter_s=0.0),
        sleep=fake_sleep,
    )


def ok() -> httpx.Response:
    return httpx.Response(200, json=OK_BODY)


def parse(payload):
    if payload != OK_BODY:
        raise errors.ResponseShapeError("test", "body", "unexpected")
    return payload


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Sun, 22 Nov 2026 10:00:05 GMT"}, 5.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    now = 1795341600.0  # Sun, 22 Nov 2026 10:00:00 GMT
    assert parse_retry_after(headers, now=now) == expected


async def test_429_retry_after_is_honoured():
    transport, seen = scripted(
        httpx.Response(429, headers={"retry-after": "3"}, json={"error": {"message": "slow down"}}), ok()
    )
    sleeps: list[float] = []
    http = client(transport, sleeps=sleeps)
    assert await http.request("POST", "/completions", {"model": "m"}, parse) == OK_BODY
    assert sleeps == [3.0]
    assert len(seen) == 2 and http.stats.retries == 1


async def test_retry_after_is_capped():
    transport, _ = scripted(httpx.Response(429, headers={"retry-after": "100000"}), ok())
    sleeps: list[float] = []
    await client(transport, sleeps=sleeps).request("POST", "/completions", {"model": "m"}, parse)
    assert sleeps == [RetryPolicy().max_retry_after_s]


async def test_insufficient_quota_is_not_retried():
    body = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    transport, seen = scripted(httpx.Response(429, json=body), ok())
    with pytest.raises(errors.QuotaExceededError, match="insufficient_quota"):
        await client(transport).request("POST", "/completions", {"model": "m"}, parse)
    assert len(seen) == 1


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_with_backoff(status):
    transport, seen = scripted(httpx.Response(status, text="busy"), httpx.Response(status, text="busy"), ok())
    sleeps: list[float] = []
    assert await client(transport, sleeps=sleeps).request("POST", "/completions", {"model": "m"}, parse) == OK_BODY
    assert len(seen) == 3
    assert len(sleeps) == 2 and all(0 < s <= 1.0 for s in sleeps)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (422, errors.BadRequestError),
        (501, errors.BadRequestError),
    ],
)
async def test_client_errors_fail_at_once_carrying_what_the_server_said(status, error):
    message = "model `x` does not exist" if status == 404 else "max_tokens must be positive"
    transport, seen = scripted(httpx.Response(status, json={"error": {"message": message, "code": "c42"}}), ok())
    with pytest.raises(error) as info:
        await client(transport).request("POST", "/completions", {"model": "m"}, parse)
    assert len(seen) == 1
    assert (info.value.status, info.value.server_message, info.value.code) == (status, message, "c42")
    assert info.value.model == "m" and info.value.url == "http://server.test/v1/completions"
    assert message in str(info.value) and "--" not in str(info.value), "no CLI flag names below the CLI"


async def test_a_404_naming_the_model_carries_the_served_models():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served-a"}, {"id": "served-b"}]})
        return httpx.Response(404, json={"error": {"message": "The model `m` does not exist."}})

    with pytest.raises(errors.NotFoundError) as info:
        await client(httpx.MockTransport(handler)).request("POST", "/completions", {"model": "m"}, parse)
    assert info.value.names_model and info.value.served_models == ["served-a", "served-b"]


async def test_connection_errors_and_timeouts_are_retried_once_the_server_has_answered():
    transport, seen = scripted(
        ok(),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("reset mid-body"),
        ok(),
    )
    http = client(transport)
    assert await http.request("POST", "/completions", {"model": "m"}, parse, cached=False) == OK_BODY
    assert await http.request("POST", "/completions", {"model": "m"}, parse, cached=False) == OK_BODY
    assert len(seen) == 5


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "refused"),
        (httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"), "tls"),
    ],
)
async def test_hopeless_connection_failures_are_not_retried(failure, kind):
    """Nothing listening at the first contact, or TLS spoken to a plain-HTTP server, will not heal."""
    if kind == "tls":
        failure.__cause__ = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    transport, seen = scripted(failure, ok())
    with pytest.raises(errors.TransportError) as info:
        await client(transport).request("POST", "/completions", {"model": "m"}, parse)
    assert len(seen) == 1 and info.value.kind == kind and not info.value.retryable


async def test_invalid_json_is_retried_then_reported():
    transport, seen = scripted(*[httpx.Response(200, content=b'{"choices": [')] * 3)
    with pytest.raises(errors.ResponseShapeError, match="not JSON"):
        await client(transport, attempts=3).request("POST", "/completions", {"model": "m"}, parse)
    assert len(seen) == 3


async def test_malformed_answer_is_not_retried_nor_cached(tmp_path):
    transport, seen = scripted(httpx.Response(200, json={"other": 1}), ok())
    cache = ResponseCache(tmp_path / "c")
    http = client(transport, cache=cache)
    with pytest.raises(errors.ResponseShapeError):
        await http.request("POST", "/completions", {"model": "m"}, parse)
    assert len(seen) == 1 and cache.stats().entries == 0


async def test_rerun_is_answered_from_cache_without_requests(tmp_path):
    cache = ResponseCache(tmp_path / "c")
    transport, seen = scripted(ok())
    await client(transport, cache=cache).request("POST", "/completions", {"model": "m", "prompt": "x"}, parse)
    second = client(httpx.MockTransport(lambda r: pytest.fail("no request expected")), cache=cache)
    assert await second.request("POST", "/completions", {"model": "m", "prompt": "x"}, parse) == OK_BODY
    assert second.stats.http_requests == 0 and second.stats.cache_hits == 1
    assert len(seen) == 1


async def test_errors_are_never_cached(tmp_path):
    cache = ResponseCache(tmp_path / "c")
    transport, _ = scripted(httpx.Response(400, json={"error": {"message": "bad"}}))
    with pytest.raises(errors.BadRequestError):
        await client(transport, cache=cache).request("POST", "/completions", {"model": "m"}, parse)
    assert cache.stats().entries == 0


async def test_api_key_is_sent_but_never_stored(tmp_path):
    secret = "sk-test-SECRET-1234567890"
    cache = ResponseCache(tmp_path / "c")
    transport, seen = scripted(ok())
    await client(transport, cache=cache, api_key=secret).request("POST", "/completions", {"model": "m"}, parse)
    assert seen[0].headers["authorization"] == f"Bearer {secret}"
    cache.close()
    for file in (tmp_path / "c").rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes()


async def test_batch_is_cached_per_item(tmp_path):
    cache = ResponseCache(tmp_path / "c")

    def handler(request):
        prompts = json.loads(request.content)["prompt"]
        prompts = prompts if isinstance(prompts, list) else [prompts]
        return httpx.Response(200, json={"choices": [{"index": i, "text": p} for i, p in enumerate(prompts)]})

    def merge(bodies):
        return {"model": "m", "prompt": [b["prompt"] for b in bodies]}

    def split(payload, k):
        return [{"choices": [{**c, "index": 0}]} for c in payload["choices"]]

    def text(payload):
        return payload["choices"][0]["text"]

    http = client(httpx.MockTransport(handler), cache=cache)
    bodies = [{"model": "m", "prompt": p} for p in ("a", "b", "c")]
    assert await http.request_batch("/completions", bodies, merge=merge, split=split, parse=text) == ["a", "b", "c"]
    assert http.stats.http_requests == 1
    # A different batch composition is still served from the per-item cache.
    again = client(httpx.MockTransport(handler), cache=cache)
    assert await again.request_batch(
        "/completions", bodies[1:] + [{"model": "m", "prompt": "d"}], merge=merge, split=split, parse=text
    ) == ["b", "c", "d"]
    assert again.stats.cache_hits == 2 and again.stats.http_requests == 1
