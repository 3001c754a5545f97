"""Check a live endpoint with a known text, one ability at a time, without the cache."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from providers import errors
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ChatMessage, GenerateRequest, ScoreRequest

PROBE_TEXT = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park."
PROBE_CONTEXT = "The quick brown fox"
PROBE_MESSAGES = (
    ChatMessage(role="system", content="You are a helpful assistant."),
    ChatMessage(role="user", content="Tell me anything."),
)
PROBE_PREFILL = ChatMessage(role="assistant", content="The quick brown")
AGREEMENT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ProbeCheck:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class ProbeReport:
    base_url: str
    model: str
    dialect: str
    server_version: str | None
    checks: tuple[ProbeCheck, ...]

    def passed(self, name: str) -> bool:
        return any(c.name == name and c.ok for c in self.checks)

    @property
    def can_target(self) -> bool:
        return self.passed("generate_raw") or self.passed("generate_chat")

    @property
    def can_reference(self) -> bool:
        return self.passed("tokenize") and (self.passed("echo_scoring") or self.passed("prompt_logprobs"))


async def probe(provider: OpenAICompatibleProvider) -> ProbeReport:
    """Run every check against `provider` with all its abilities switched on and no cache."""
    saved = provider.capabilities, provider.http.cache, provider.score_via
    everything = {name: True for name in type(provider.capabilities).model_fields if name != "max_top_logprobs"}
    provider.capabilities = provider.capabilities.model_copy(update=everything)
    provider.http.cache = None
    try:
        checks = [await _run(name, check, provider) for name, check in CHECKS]
    finally:
        provider.capabilities, provider.http.cache, provider.score_via = saved
    return ProbeReport(
        base_url=provider.base_url,
        model=provider.model,
        dialect=provider.dialect,
        server_version=provider.server_version,
        checks=tuple(checks),
    )


async def _run(name: str, check: Callable[[OpenAICompatibleProvider], Awaitable[str]], provider) -> ProbeCheck:
    start = time.perf_counter()
    try:
        detail, ok = await check(provider), True
    except (errors.ProviderError, AssertionError) as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return ProbeCheck(name=name, ok=ok, detail=detail[:300], seconds=time.perf_counter() - start)


def _models(payload: Any) -> list[str]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise errors.ResponseShapeError("endpoint", "/models", "no data list")
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


async def _check_models(p: OpenAICompatibleProvider) -> str:
    served = await p.http.request("GET", "/models", None, _models, cached=False)
    assert p.model in served, f"{p.model!r} is not served here; the endpoint serves: {', '.join(served) or 'nothing'}"
    return f"{len(served)} model(s): {', '.join(served[:5])}"


async def _check_generate_raw(p: OpenAICompatibleProvider) -> str:
    completion = (await p.generate(GenerateRequest(prompt=PROBE_CONTEXT, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    return f"{len(completion.tokens)} tokens with logprobs: {completion.text[:40]!r}"


async def _check_generate_chat(p: OpenAICompatibleProvider) -> str:
    completion = (await p.generate(GenerateRequest(prompt=PROBE_MESSAGES, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    return f"{len(completion.tokens)} tokens with logprobs: {completion.text[:40]!r}"


async def _check_chat_prefill(p: OpenAICompatibleProvider) -> str:
    prompt = (*PROBE_MESSAGES, PROBE_PREFILL)
    completion = (await p.generate(GenerateRequest(prompt=prompt, max_tokens=8))).completions[0]
    assert completion.tokens, "no generated tokens"
    return f"continued {PROBE_PREFILL.content!r} with {completion.text[:40]!r}"


async def _check_tokenize(p: OpenAICompatibleProvider) -> str:
    ids = await p.tokenize(PROBE_TEXT, add_special_tokens=False)
    assert ids, "no tokens"
    back = await p.detokenize(ids)
    assert back == PROBE_TEXT, f"round trip changed the text: {back!r}"
    with_special = await p.tokenize(PROBE_TEXT)
    bos = "adds a BOS token" if len(with_special) > len(ids) else "adds no BOS token"
    return f"{len(ids)} tokens, exact round trip, {bos}"


async def _check_chat_tokenize(p: OpenAICompatibleProvider) -> str:
    ids = await p.tokenize((*PROBE_MESSAGES, PROBE_PREFILL))
    text = await p.detokenize(ids)
    assert text.rstrip().endswith(PROBE_PREFILL.content), (
        f"templated text does not end with the prefill: {text[-60:]!r}"
    )
    return f"{len(ids)} templated tokens ending in the prefill"


async def _score(p: OpenAICompatibleProvider, via: str) -> list[float]:
    p.score_via = via
    scored = await p.score(ScoreRequest(context=PROBE_CONTEXT, continuation=PROBE_TEXT[len(PROBE_CONTEXT) :]))
    values = [t.logprob for t in scored.tokens]
    assert values and all(math.isfinite(v) and v <= 0 for v in values), "non-finite or positive logprobs"
    return values


async def _check_echo(p: OpenAICompatibleProvider) -> str:
    ids = await p.tokenize(PROBE_TEXT)
    p.score_via = "echo"
    payload = await p.http.request("POST", "/completions", p.score_body(ids), lambda answer: answer, cached=False)
    echoed = p.wire.get(p.wire.choices(payload, 1)[0], "logprobs", "choices[0].logprobs")
    first = p.wire.get(p.wire.get(echoed, "token_logprobs", "token_logprobs"), 0, "token_logprobs[0]")
    assert first is None, f"the first echoed logprob is {first!r}, expected null (nothing conditions it): off by one?"
    values = await _score(p, "echo")
    return f"{len(ids)} tokens echoed, lengths match, first null, finite; NLL {-sum(values):.3f} nats"


async def _check_prompt_logprobs(p: OpenAICompatibleProvider) -> str:
    values = await _score(p, "prompt_logprobs")
    try:
        echo = await _score(p, "echo")
    except errors.ProviderError:
        return f"{len(values)} continuation tokens (echo unavailable to compare)"
    diff = max(abs(a - b) for a, b in zip(values, echo, strict=True))
    assert diff <= AGREEMENT_TOLERANCE, f"disagrees with echo by {diff:.2e} nats"
    return f"{len(values)} tokens; agrees with echo to {diff:.1e} nats"


async def _check_batch(p: OpenAICompatibleProvider) -> str:
    p.score_via = "echo"
    requests = [
        ScoreRequest(context=PROBE_CONTEXT, continuation=" jumps"),
        ScoreRequest(context="It was", continuation=" a sunny day"),
    ]
    singles = [await p.score(r) for r in requests]
    batched = await p.score_many(requests)
    for single, batch in zip(singles, batched, strict=True):
        diff = max(abs(a.logprob - b.logprob) for a, b in zip(single.tokens, batch.tokens, strict=True))
        assert diff <= AGREEMENT_TOLERANCE, f"batched scores differ from single ones by {diff:.2e}"
    return "2 prompts in one request, same scores as one by one"


CHECKS: tuple[tuple[str, Callable[[OpenAICompatibleProvider], Awaitable[str]]], ...] = (
    ("models", _check_models),
    ("generate_raw", _check_generate_raw),
    ("generate_chat", _check_generate_chat),
    ("chat_prefill", _check_chat_prefill),
    ("tokenize", _check_tokenize),
    ("chat_tokenize", _check_chat_tokenize),
    ("echo_scoring", _check_echo),
    ("prompt_logprobs", _check_prompt_logprobs),
    ("batch_prompts", _check_batch),
)
