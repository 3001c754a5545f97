"""Pick the adapter for an endpoint: by name (`providers.dialects`), or by what it is: a hosted
service by its host name, a vLLM server by `GET /version`, anything else generic."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
from pydantic import BaseModel

from providers import dialects, errors
from providers.http import HttpClient, ResponseCache, RetryEvent, RetryPolicy, Transport
from providers.openai_compatible import GENERIC_CAPABILITIES, OpenAICompatibleProvider
from providers.ratelimit import RateLimitPolicy
from providers.records import Capabilities
from providers.scoring import ScoreVia
from providers.tokenizer import CHECK_TEXTS, LocalTokenizer

__all__ = ["GENERIC_CAPABILITIES", "connect", "connect_requests_at_most", "detect_dialect"]

TokenizerChoice = Literal["auto", "server"] | str | os.PathLike[str]
"""Where raw text is tokenized: "server" (its /tokenize), "auto" (the folder a vLLM server on this
machine loaded the model from, if its tokenizer.json matches /tokenize; otherwise the server),
or the path of a tokenizer.json (or of a folder holding one) that must match."""


def connect_requests_at_most() -> int:
    """What `connect` may send before any work: GET /version (auto-detection), GET /models and
    the local tokenizer's check against the server (ids with and without special tokens, and
    the decoded text, of every check text)."""
    return 2 + 3 * len(CHECK_TEXTS)


def _server_version(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("version"), str):
        raise errors.ResponseShapeError("endpoint", "/version", "no version string")
    return payload["version"]


async def detect_dialect(http: HttpClient) -> tuple[str, str | None]:
    """(dialect, server version): a hosted service by host, vLLM by `GET /version`, else generic.

    SGLang answers /version too and is taken for vLLM: declare `sglang`. llama.cpp has no
    /version and is taken for generic: declare `llamacpp`."""
    by_host = dialects.dialect_for_host(http.base_url)
    if by_host is not None:
        return by_host, None
    try:
        root = http.base_url.removesuffix("/v1")
        return "vllm", await http.request("GET", f"{root}/version", None, _server_version)
    except (errors.NotFoundError, errors.BadRequestError, errors.ResponseShapeError):
        return "generic", None


async def connect(
    base_url: str,
    model: str,
    *,
    dialect: str = "auto",
    api_key: str | None = None,
    capabilities: Capabilities | None = None,
    options: BaseModel | dict[str, Any] | None = None,
    cache: ResponseCache | None = None,
    transport: Transport | None = None,
    max_concurrency: int = 8,
    max_batch_prompts: int = 16,
    score_via: ScoreVia | None = None,
    retry: RetryPolicy = RetryPolicy(),
    rate_limit: RateLimitPolicy = RateLimitPolicy(),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    role: str = "",
    tokenizer: TokenizerChoice = "server",
    basic_auth: tuple[str, str] | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> OpenAICompatibleProvider:
    """An adapter for `model` at `base_url` (an OpenAI-style URL ending in /v1).

    `dialect`: "auto" or a name in `providers.dialects.DIALECT_NAMES`. `capabilities` replaces
    what the dialect declares (after a probe, say). `options`: the dialect's own settings, such
    as OpenRouter's provider routing (`providers.openrouter.ProviderRouting`).
    `role` ("target" / "reference") travels in every error, for the caller's advice.
    `tokenizer`: see `TokenizerChoice`; a local tokenizer saves three round trips per scored text.
    `rate_limit`: how the endpoint adapts to 429s and `x-ratelimit-*` headers (`max_concurrency`
    is the ceiling it never exceeds). `basic_auth`: the credentials of a URL's userinfo, kept
    out of `base_url`. `on_retry` hears of every attempt that will be retried."""
    if dialect != "auto":
        dialects.get(dialect)  # an unknown name fails before anything is opened
    http = HttpClient(
        base_url,
        provider=dialect,
        api_key=api_key,
        max_concurrency=max_concurrency,
        retry=retry,
        rate_limit=rate_limit,
        cache=cache,
        transport=transport,
        sleep=sleep,
        role=role,
        basic_auth=basic_auth,
        on_retry=on_retry,
    )
    try:
        server_version = None
        if dialect == "auto":
            dialect, server_version = await detect_dialect(http)
        http.provider = dialect
        cls = dialects.get(dialect).adapter()
        provider = cls(
            http,
            model,
            capabilities or cls.declared_capabilities(model),
            score_via=score_via,
            max_batch_prompts=max_batch_prompts,
            options=options,
            dialect=dialect,
        )
        provider.server_version = server_version
        await _choose_tokenizer(provider, tokenizer)
    except BaseException:
        await http.aclose()
        raise
    return provider


async def _choose_tokenizer(provider: OpenAICompatibleProvider, tokenizer: TokenizerChoice) -> None:
    if tokenizer == "server":
        return
    if tokenizer != "auto":
        await provider.adopt_tokenizer(LocalTokenizer.load(tokenizer))
        return
    served_folder = getattr(provider, "served_folder", None)
    if served_folder is None:
        return
    try:
        folder = await served_folder()
        if folder is not None and (folder / "tokenizer.json").is_file():
            await provider.adopt_tokenizer(LocalTokenizer.load(folder))
    except (errors.ProviderError, ValueError) as exc:
        # "auto" only ever saves time: whatever stands in the way, the server tokenizes.
        provider.tokenizer_source = f"server (the served folder's tokenizer was not used: {exc})"
