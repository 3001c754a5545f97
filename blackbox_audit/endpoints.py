"""An audit's two endpoints, opened one way for the audit and for every question asked after it
(the MCP server, hypotheses): the same providers, response cache, limits and checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx

from blackbox_audit.cache import ResponseCache
from blackbox_audit.config import ROLES, AuditConfig, EndpointConfig
from blackbox_audit.framing import Framer
from blackbox_audit.hooks import Hooks
from providers.http import RecordingTransport, ReplayTransport, RetryPolicy
from providers.openai_compatible import OpenAICompatibleProvider
from providers.registry import connect

TransportFactory = Callable[[str], httpx.AsyncBaseTransport | None]
"""Role ("target" / "reference") -> transport; tests replay or inject faults through it."""


async def connect_endpoint(endpoint: EndpointConfig, **settings: Any) -> OpenAICompatibleProvider:
    """A provider for one configured endpoint (its URL, model, dialect, options and credentials);
    `settings` are `connect`'s other arguments (cache, transport, retry, ...)."""
    return await connect(
        endpoint.base_url, endpoint.model, dialect=endpoint.dialect, options=endpoint.dialect_options,
        api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else None,
        basic_auth=endpoint.basic_auth, **settings,
    )  # fmt: skip


@asynccontextmanager
async def open_endpoints(
    config: AuditConfig,
    hooks: Hooks,
    transports: TransportFactory = lambda role: None,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> AsyncIterator[tuple[OpenAICompatibleProvider, OpenAICompatibleProvider, OpenAICompatibleProvider | None]]:
    """The endpoints (target, reference, and the null target when given), each checked for its
    role before any work. An endpoint with a declared dialect connects without a request
    (auto-detection asks GET /version), so those go first: a role one cannot play is refused
    before anything is sent."""
    cache = ResponseCache.open(config.cache_dir, on_failure=hooks.warn) if config.use_cache else None
    opened: dict[str, OpenAICompatibleProvider] = {}
    framer = Framer.of(config)
    roles = [role for role in ROLES if getattr(config, role) is not None]
    try:
        for role in sorted(roles, key=lambda r: getattr(config, r).dialect == "auto"):
            endpoint = getattr(config, role)
            label = role.replace("_", "-")
            opened[role] = provider = await connect_endpoint(
                endpoint, cache=cache, transport=transports(role), max_concurrency=endpoint.max_concurrency,
                retry=retry, sleep=sleep, role=label, tokenizer=endpoint.tokenizer, on_retry=hooks.retry,
            )  # fmt: skip
            if role == "reference":
                provider.check_can_score(framer.prompt("The"))
            else:
                provider.check_can_generate(framer.prompt("The"))
        yield opened["target"], opened["reference"], opened.get("null_target")
    finally:
        for provider in opened.values():
            await provider.aclose()
        if cache is not None:
            cache.close()


TOKENIZER_PROBE = "Tokenizers differ: naïve café, 東京, 1234567, def f(x): return x**2  # ok"


async def shared_tokenizer(target: OpenAICompatibleProvider, reference: OpenAICompatibleProvider) -> bool:
    """Whether both endpoints tokenize like one tokenizer: as their capabilities declare, else
    the same ids for a probe text with words, digits, code and non-ASCII (two cached calls)."""
    declared = target.capabilities.same_tokenizer_family(reference.capabilities)
    if declared is not None:
        return declared
    ids = [await p.tokenize(TOKENIZER_PROBE, add_special_tokens=False) for p in (target, reference)]
    return ids[0] == ids[1]


async def server_meta(endpoint: EndpointConfig) -> dict[str, str]:
    """What a fixture says about where it was recorded."""
    detected = await connect(endpoint.base_url, endpoint.model, basic_auth=endpoint.basic_auth)
    await detected.aclose()
    return {
        "server": detected.dialect,
        "version": detected.server_version or "unknown",
        "model": endpoint.model,
        "dialect": endpoint.dialect if endpoint.dialect != "auto" else detected.dialect,
        "base_url": endpoint.base_url,
        "recorded": dt.date.today().isoformat(),
    }


def replaying(folder: Path) -> TransportFactory:
    """Each role answered from `folder/<role>/`'s recorded exchanges, and nothing else."""
    replays = {role: ReplayTransport(Path(folder) / role) for role in ROLES if (Path(folder) / role).is_dir()}
    return replays.__getitem__


def recording(folder: Path, config: AuditConfig) -> TransportFactory:
    """Each role's exchanges written to `folder/<role>/` as they happen (auth stripped)."""
    roles = [role for role in ROLES if getattr(config, role) is not None]
    metas = {role: anyio.run(server_meta, getattr(config, role)) for role in roles}
    recorders = {role: RecordingTransport(Path(folder) / role, {**metas[role], "role": role}) for role in roles}
    return recorders.__getitem__


def replayable(config: AuditConfig) -> AuditConfig:
    """The config a recording or replay needs: the servers tokenize (a replay has the recorded
    /tokenize answers, not the served tokenizer.json), and the cache stays out of it."""
    endpoints = {
        role: getattr(config, role).model_copy(update={"tokenizer": "server"})
        for role in ROLES
        if getattr(config, role) is not None
    }
    return config.model_copy(update={**endpoints, "use_cache": False})
