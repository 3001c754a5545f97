"""Pick the adapter for an endpoint: by name, or by what the server says it is."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args

import anyio
import httpx

from providers import errors
from providers.http import HttpClient, ResponseCache, RetryEvent, RetryPolicy
from providers.openai import (
    OPENAI_KEY_VARIABLE,
    OpenAIProvider,
    is_openai_host,
    openai_capabilities,
)
from providers.openai_compatible import OpenAICompatibleProvider, ScoreVia
from providers.records import Capabilities
from providers.tokenizer import CHECK_TEXTS, LocalTokenizer
from providers.vllm import VLLM_CAPABILITIES, VLLMProvider

Dialect = Literal["auto", "vllm", "openai", "generic"]
DIALECTS: tuple[str, ...] = get_args(Dialect)

TokenizerChoice = Literal["auto", "server"] | str | os.PathLike[str]
"""Where raw text is tokenized: "server" (its /tokenize), "auto" (the folder a vLLM server on this
machine loaded the model from, if its tokenizer.json matches /tokenize; otherwise the server),
or the path of a tokenizer.json (or of a folder holding one) that must match."""

GENERIC_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=False,
    echo_scoring=False,
    prompt_logprobs=False,
    tokenize=False,
    chat_tokenize=False,
    token_id_prompts=False,
    batch_prompts=False,
    max_top_logprobs=5,
)
"""What we assume of an unknown server until it is declared or probed (blackbox-audit probe)."""


def connect_requests_at_most() -> int:
    """What `connect` may send before any work: GET /version (auto-detection), GET /models and
    the local tokenizer's check against the server (ids with and without special tokens, and
    the decoded text, of every check text)."""
    return 2 + 3 * len(CHECK_TEXTS)


def service_key_variables(base_url: str) -> tuple[str, ...]:
    """Environment variables a hosted service's own key lives in, for its host only."""
    return (OPENAI_KEY_VARIABLE,) if is_openai_host(base_url) else ()


def _server_version(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("version"), str):
        raise errors.ResponseShapeError("endpoint", "/version", "no version string")
    return payload["version"]


async def connect(
    base_url: str,
    model: str,
    *,
    dialect: Dialect = "auto",
    api_key: str | None = None,
    capabilities: Capabilities | None = None,
    cache: ResponseCache | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_concurrency: int = 8,
    max_batch_prompts: int = 16,
    score_via: ScoreVia | None = None,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    role: str = "",
    tokenizer: TokenizerChoice = "server",
    basic_auth: tuple[str, str] | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> OpenAICompatibleProvider:
    """An adapter for `model` at `base_url` (an OpenAI-style URL ending in /v1).

    `role` ("target" / "reference") travels in every error, for the caller's advice.
    `tokenizer`: see `TokenizerChoice`; a local tokenizer saves three round trips per scored text.
    `basic_auth`: the credentials of a URL's userinfo, kept out of `base_url`."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    http = HttpClient(
        base_url,
        provider=dialect,
        api_key=api_key,
        max_concurrency=max_concurrency,
        retry=retry,
        cache=cache,
        transport=transport,
        sleep=sleep,
        role=role,
        basic_auth=basic_auth,
        on_retry=on_retry,
    )
    server_version = None
    if dialect == "auto":
        if is_openai_host(base_url):
            dialect = "openai"
        else:
            try:
                root = http.base_url.removesuffix("/v1")
                server_version = await http.request("GET", f"{root}/version", None, _server_version)
                dialect = "vllm"
            except (errors.NotFoundError, errors.BadRequestError, errors.ResponseShapeError):
                dialect = "generic"
            except errors.ProviderError:
                await http.aclose()
                raise
    http.provider = dialect
    cls: type[OpenAICompatibleProvider]
    if dialect == "vllm":
        cls, default_caps = VLLMProvider, VLLM_CAPABILITIES
    elif dialect == "openai":
        cls, default_caps = OpenAIProvider, openai_capabilities(model)
    else:
        cls, default_caps = OpenAICompatibleProvider, GENERIC_CAPABILITIES
    provider = cls(http, model, capabilities or default_caps, score_via=score_via, max_batch_prompts=max_batch_prompts)
    provider.server_version = server_version
    try:
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
    if not isinstance(provider, VLLMProvider):
        return
    try:
        folder = await provider.served_folder()
        if folder is not None and (folder / "tokenizer.json").is_file():
            await provider.adopt_tokenizer(LocalTokenizer.load(folder))
    except (errors.ProviderError, ValueError) as exc:
        # "auto" only ever saves time: whatever stands in the way, the server tokenizes.
        provider.tokenizer_source = f"server (the served folder's tokenizer was not used: {exc})"
