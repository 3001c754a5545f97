"""OpenRouter (openrouter.ai/api/v1), per its published reference: logprobs and top_logprobs are
passed through to whichever upstream provider serves the request, and many upstreams silently
return `null`. So every request carries provider routing (`provider` in the body,
https://openrouter.ai/docs/features/provider-routing): `require_parameters: true` (only upstreams
that support every parameter sent, logprobs included), no fallbacks, and optionally `only` /
`order` (provider slugs) and `quantizations` (e.g. `bf16`) to pin the weights being audited.

Null logprobs are refused with that advice; an answer from an upstream outside `only` is refused.
OpenRouter is a target only: prompt scoring is not guaranteed through it. Assistant prefill is
documented by OpenRouter, but whether an upstream continues it varies: not declared (probe it).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities, GenerateRequest, Generation

OPENROUTER_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=False,
    echo_scoring=False,
    prompt_logprobs=False,
    tokenizer="none",
    chat_tokenize=False,
    token_id_prompts=False,
    batch_prompts=False,
    max_top_logprobs=20,
)

SLUG = re.compile(r"^[a-z0-9][a-z0-9._/-]*$")


class ProviderRouting(BaseModel):
    """OpenRouter's `provider` object, as this tool sends it (the cache key includes it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    require_parameters: bool = True
    allow_fallbacks: bool = False
    only: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    quantizations: tuple[str, ...] = ()
    ignore: tuple[str, ...] = Field(default=(), description="provider slugs never to use")

    @field_validator("only", "order", "quantizations", "ignore", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """A flag's `only=deepinfra,together` arrives as one string."""
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value

    @field_validator("only", "order", "quantizations", "ignore")
    @classmethod
    def _slugs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not SLUG.match(value):
                raise ValueError(
                    f"{value!r} is not a provider slug or quantization name (lower case, e.g. deepinfra, bf16)"
                )
        return values

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"require_parameters": self.require_parameters, "allow_fallbacks": self.allow_fallbacks}
        for name in ("only", "order", "quantizations", "ignore"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        return out


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class OpenRouterProvider(OpenAICompatibleProvider):
    completion_logprobs: ClassVar[int] = 1
    chat_top_logprobs: ClassVar[int] = 1
    options_model: ClassVar[type[BaseModel] | None] = ProviderRouting
    null_logprobs_hint: ClassVar[str] = (
        "OpenRouter passes logprobs through and many upstreams return null: pin one that serves them"
        " (openrouter only=PROVIDER; require_parameters is on)"
    )

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return OPENROUTER_CAPABILITIES

    @property
    def routing(self) -> ProviderRouting:
        assert isinstance(self.options, ProviderRouting)
        return self.options

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        body["provider"] = self.routing.body()
        return path, body

    def _check_upstream(self, payload: Any) -> None:
        allowed = self.routing.only
        if not allowed:
            return
        upstream = payload.get("provider") if isinstance(payload, dict) else None
        if not isinstance(upstream, str) or _normalise(upstream) not in {_normalise(a) for a in allowed}:
            raise self.wire.fail(
                "provider", f"answered by {upstream!r}, not by a pinned upstream ({', '.join(allowed)})"
            )

    def _parse_generation(self, payload: Any, n: int) -> Generation:
        self._check_upstream(payload)
        return super()._parse_generation(payload, n)

    def _parse_chat_generation(self, payload: Any, n: int) -> Generation:
        self._check_upstream(payload)
        return super()._parse_chat_generation(payload, n)


ADAPTER = OpenRouterProvider
