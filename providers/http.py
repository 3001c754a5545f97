"""The one module that talks HTTP (httpx): requests, retries, limits, record/replay, cache use.

Retry policy, written once: 408/409/429/5xx, timeouts, connection errors and unreadable
bodies are retried with capped, jittered exponential backoff, honouring `retry-after-ms` /
`Retry-After`; other 4xx and a 429 `insufficient_quota` fail at once.

Rate limits, per endpoint: `providers.ratelimit.EndpointLimiter`. Status codes to errors:
`providers.errors.status_error`.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from providers import errors
from providers.cache_key import cache_key
from providers.fixtures import Exchange, PromptAnswers, exchange_key, load_exchanges, write_exchange
from providers.ratelimit import EndpointLimiter, RateLimitPolicy

T = TypeVar("T")
Transport = httpx.AsyncBaseTransport
"""What `connect(..., transport=)` takes: tests and recordings pass their own (the only httpx type
other modules name, so that this stays the one module importing httpx)."""


def health_ok(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when an OpenAI-compatible server answers its /health route with 200."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        return httpx.get(f"{root}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


class ResponseCache(Protocol):
    """What the HTTP layer needs from a cache; `blackbox_audit.cache` provides one on disk."""

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    jitter_s: float = 0.5


@dataclass
class RequestStats:
    """Counts for manifests and benchmarks: what went over the wire, what the cache saved."""

    http_requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    """Answers with status 429 (quota errors included)."""


@dataclass(frozen=True)
class RetryEvent:
    """One failed attempt that will be retried: for a caller that tells the user (a CLI line)."""

    role: str
    url: str
    error: str
    attempt: int
    max_attempts: int
    wait_s: float


def _wait_for(policy: RetryPolicy) -> Callable[[Any], float]:
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_backoff_s, max=policy.max_backoff_s, jitter=policy.jitter_s
    )

    def wait(retry_state: Any) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            return min(retry_after, policy.max_retry_after_s)
        return backoff(retry_state)

    return wait


class HttpClient:
    """One endpoint's HTTP client: concurrency limit, retries, response cache, request counts."""

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 300.0,
        retry: RetryPolicy = RetryPolicy(),
        cache: ResponseCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        role: str = "",
        basic_auth: tuple[str, str] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        rate_limit: RateLimitPolicy = RateLimitPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ):
        """`base_url` holds no credentials (a URL's userinfo comes apart as `basic_auth`, how a
        URL's userinfo is sent); `on_retry` hears of every attempt that will be retried."""
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.role = role
        self.cache = cache
        self.stats = RequestStats()
        self._retry = retry
        self._sleep = sleep
        self._on_retry = on_retry
        self._answered = False  # no HTTP answer yet: a refused connection then means no server
        self.limiter = EndpointLimiter(max_concurrency, rate_limit, clock=clock, sleep=sleep)
        # One Authorization header: a URL's userinfo (basic auth) is the more specific credential.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key and not basic_auth else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            auth=httpx.BasicAuth(*basic_auth) if basic_auth else None,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        parse: Callable[[Any], T],
        *,
        cached: bool = True,
    ) -> T:
        """Send (or answer from cache) one request; `parse` validates before anything is cached."""
        return (
            await self.request_batch(
                path, [body], merge=lambda b: b[0], split=lambda p, k: [p], parse=parse, method=method, cached=cached
            )
        )[0]

    async def request_batch(
        self,
        path: str,
        bodies: Sequence[dict[str, Any] | None],
        *,
        merge: Callable[[list[Any]], dict[str, Any]],
        split: Callable[[Any, int], list[Any]],
        parse: Callable[[Any], T] | list[Callable[[Any], T]],
        method: str = "POST",
        cached: bool = True,
    ) -> list[T]:
        """Several requests sent as one (`merge`), answered and cached one by one (`split`).

        Each item is cached under the key of its own single request, so a rerun hits the cache
        whatever the batch composition was.
        """
        parsers = parse if isinstance(parse, list) else [parse] * len(bodies)
        cache = self.cache if cached else None
        keys = [cache_key(self.base_url, method, path, b)[0] for b in bodies] if cache is not None else []
        results: list[Any] = [None] * len(bodies)
        misses: list[int] = []
        for i in range(len(bodies)):
            hit = cache.get(keys[i]) if cache is not None else None
            if hit is not None:
                try:
                    results[i] = parsers[i](hit)
                    self.stats.cache_hits += 1
                    continue
                except errors.ResponseShapeError:
                    pass
            if cache is not None:
                self.stats.cache_misses += 1
            misses.append(i)
        if not misses:
            return results
        merged = merge([bodies[i] for i in misses])
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=_wait_for(self._retry),
            retry=retry_if_exception(errors.is_retryable),
            sleep=self._sleep,
            before_sleep=self._tell_retry,
            reraise=True,
        )
        previous: BaseException | None = None
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.stats.retries += 1
                # A retried 429 has just waited out its own Retry-After: the hold it set is for the others.
                waited = isinstance(previous, errors.RateLimitError) and previous.retry_after_s is not None
                try:
                    parts = split(await self._send(method, path, merged, honour_hold=not waited), len(misses))
                except errors.ProviderError as exc:
                    previous = exc
                    raise
                parsed = [parsers[i](part) for i, part in zip(misses, parts, strict=True)]
        for i, part, value in zip(misses, parts, parsed, strict=True):
            results[i] = value
            if cache is not None:
                cache.set(keys[i], part)
        return results

    def _tell_retry(self, retry_state: Any) -> None:
        if self._on_retry is None or retry_state.outcome is None:
            return
        error = retry_state.outcome.exception()
        self._on_retry(
            RetryEvent(
                role=self.role,
                url=getattr(error, "url", self.base_url),
                error=str(error),
                attempt=retry_state.attempt_number,
                max_attempts=self._retry.max_attempts,
                wait_s=retry_state.next_action.sleep if retry_state.next_action else 0.0,
            )
        )

    def _url(self, path: str) -> str:
        """Paths are relative to the base URL, except absolute ones (vLLM's /tokenize sits beside /v1)."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def _send(self, method: str, path: str, body: dict[str, Any] | None, *, honour_hold: bool = True) -> Any:
        async with self.limiter.slot(honour_hold=honour_hold) as started_at:
            self.stats.http_requests += 1
            self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
            try:
                response = await self._client.request(method, path, json=body)
                content = await response.aread()
                self.limiter.on_answer(response.status_code, response.headers, started_at)
                if response.status_code == 429:
                    self.stats.rate_limited += 1
            except httpx.TransportError as exc:
                raise self._transport_error(exc, self._url(path)) from exc
        self._answered = True
        if response.status_code >= 400:
            model = body.get("model") if isinstance(body, dict) else None
            error = errors.status_error(
                response.status_code,
                self._url(path),
                response.headers,
                content,
                provider=self.provider,
                role=self.role,
                model=model if isinstance(model, str) else None,
            )
            if isinstance(error, errors.NotFoundError) and error.names_model:
                error.served_models = await self.served_models()
            raise error
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass  # NaN / Infinity literals, which only the stdlib reads (the wire parsers then refuse them)
        try:
            return json.loads(content)
        except ValueError as exc:
            raise errors.ResponseShapeError(
                self.provider, path, f"body is not JSON ({len(content)} bytes)", retryable=True
            ) from exc

    async def served_models(self) -> list[str] | None:
        """The model ids the server lists at `GET /models`; None when it cannot say."""
        self.stats.http_requests += 1
        self.stats.by_path["/models"] = self.stats.by_path.get("/models", 0) + 1
        try:
            response = await self._client.get("/models", timeout=10.0)
            return sorted(str(m["id"]) for m in response.raise_for_status().json()["data"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def _transport_error(self, exc: httpx.TransportError, url: str) -> errors.TransportError:
        """What kind of failure, and whether it can heal: nothing listening at the first contact
        and a failed TLS handshake do not; a timeout or a connection lost mid-answer may."""
        kind: errors.TransportKind
        if isinstance(exc, httpx.ConnectTimeout):
            kind, retryable = "timeout", self._answered  # never connected within the connect timeout
        elif isinstance(exc, httpx.TimeoutException):
            kind, retryable = "timeout", True
        elif _caused_by(exc, ssl.SSLError):
            kind, retryable = "tls", False
        elif _caused_by(exc, ConnectionRefusedError) or (
            isinstance(exc, httpx.ConnectError) and "refused" in str(exc).lower()
        ):
            kind, retryable = "refused", self._answered
        elif isinstance(exc, httpx.ConnectError):
            kind, retryable = "other", True
        else:
            kind, retryable = "lost", True
        detail = str(exc) or {"timeout": "timed out", "lost": "connection lost"}.get(kind, type(exc).__name__)
        return errors.TransportError(
            f"{self.provider} {url}: {type(exc).__name__}: {detail}",
            url=url,
            kind=kind,
            retryable=retryable,
            role=self.role,
        )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests through and writes each exchange to `directory`, auth stripped."""

    def __init__(self, directory: Path, meta: dict[str, str], inner: httpx.AsyncBaseTransport | None = None):
        self.directory = directory
        self.meta = meta
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        body = json.loads(request.content) if request.content else None
        try:
            response_body = json.loads(content)
        except ValueError:
            response_body = content.decode("utf-8", "replace")
        write_exchange(
            self.directory,
            Exchange(
                method=request.method,
                path=request.url.path,
                request_body=body,
                status=response.status_code,
                response_headers=dict(response.headers),
                response_body=response_body,
                meta=self.meta,
            ),
        )
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    async def aclose(self) -> None:
        await self._inner.aclose()


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers only recorded requests (a completions batch also prompt by prompt, as recorded in
    other batches); anything else raises `FixtureMissError`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._exchanges = load_exchanges(directory)
        self._prompts = PromptAnswers(self._exchanges)
        self.requests_served = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        exchange = self._exchanges.get(exchange_key(request.method, request.url.path, body))
        if exchange is None:
            recombined = self._prompts.answer(request.method, request.url.path, body)
            if recombined is not None:
                self.requests_served += 1
                return httpx.Response(200, json=recombined)
            raise errors.FixtureMissError(
                f"no recorded exchange in {self.directory} for {request.method} {request.url.path} {json.dumps(body)[:300]}"
                " (record it from a real server: blackbox-audit fixtures record)"
            )
        self.requests_served += 1
        body_out = exchange.response_body
        content = body_out.encode() if isinstance(body_out, str) else json.dumps(body_out).encode()
        return httpx.Response(exchange.status, headers=exchange.response_headers, content=content)
