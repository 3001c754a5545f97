"""A conformance probe: check a live endpoint, one ability at a time, before trusting it.

Every check sends known text, without the cache, and reports what came back: the abilities the
audit needs (generation with logprobs, prefill, tokenization, echo / prompt_logprobs scoring,
batching) and the traps the services' references warn about:

- `echo_shape`: how many entries an echo returns for a prompt of N tokens (N; llama.cpp's
  server returns 1, having ignored echo) and whether the first is null (nothing conditions it);
- `top_logprobs_cap`: the largest `top_logprobs` honoured, against the declared cap;
- `raw_logprobs`: the greedy token's logprob at temperature 0 and at temperature 1 must be equal
  when the service reports the model's raw logprobs (processed ones differ);
- `greedy_repeat`: two greedy generations give the same text and logprobs;
- `template_leak`: chat text carrying chat-template markers (`<|im_end|>`, `<end_of_turn>`, ...);
- `snapshot`: the model name the server answers with, and `system_fingerprint` where sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from providers import errors
from providers.openai_compatible import OpenAICompatibleProvider
from providers.probe_checks import CHECKS


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
        scoring = self.passed("echo_scoring") or self.passed("prompt_logprobs")
        return scoring and (self.passed("tokenize") or self.passed("echo_text_alignment"))

    def markdown(self) -> str:
        """The report as a Markdown table, for docs and issues."""
        lines = [
            f"`{self.model}` at `{self.base_url}` (dialect `{self.dialect}`, server {self.server_version or 'unknown'})",
            "",
            "| check | result | detail |",
            "|---|---|---|",
        ]
        for c in self.checks:
            detail = c.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c.name} | {'ok' if c.ok else 'FAIL'} | {detail} |")
        lines.append(f"| as target | {'yes' if self.can_target else 'no'} | generation with logprobs |")
        lines.append(
            f"| as reference | {'yes' if self.can_reference else 'no'} | tokenize or echoed texts, and echo or prompt_logprobs |"
        )
        return "\n".join(lines)


async def probe(provider: OpenAICompatibleProvider) -> ProbeReport:
    """Run every check against `provider`, its abilities switched on, without the cache.

    Token ids are used where the endpoint takes them and its tokenizer answers; otherwise the
    text-and-echoed-texts path, as scoring itself chooses."""
    saved = provider.capabilities, provider.http.cache, provider.score_via
    declared = provider.capabilities
    switches: dict[str, object] = {
        name: True for name, field in type(declared).model_fields.items() if field.annotation in (bool, "bool")
    }
    switches["token_id_prompts"] = declared.token_id_prompts
    switches["tokenizer"] = declared.tokenizer if declared.tokenize else "server"
    provider.capabilities = declared.model_copy(update=switches)
    provider.http.cache = None
    checks: list[ProbeCheck] = []
    try:
        for name, check in CHECKS:
            result = await _run(name, check, provider)
            checks.append(result)
            if name == "tokenize" and not result.ok:  # nothing to tokenize with: score by echoed texts
                provider.capabilities = provider.capabilities.model_copy(update={"tokenizer": declared.tokenizer})
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


__all__ = ["CHECKS", "ProbeCheck", "ProbeReport", "probe"]
