"""DeepInfra (api.deepinfra.com/v1/openai), per its published OpenAI-compatible reference:

- Chat takes `logprobs: true` with `top_logprobs` 1-20 (0 is refused), so we ask 1.
- /completions takes `echo`, an integer `logprobs` and `return_tokens_as_token_ids`; the docs do
  not promise that an echo carries prompt logprobs, so run `blackbox-audit probe` before using it
  as a reference. Prompts are text (token ids are not documented) and there is no /tokenize: the
  continuation is located by the echoed token texts (so `return_tokens_as_token_ids` stays off,
  it would replace those texts by `token_id:N`).
"""

from __future__ import annotations

from typing import ClassVar

from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities

DEEPINFRA_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=False,
    echo_scoring=True,
    prompt_logprobs=False,
    tokenizer="none",
    chat_tokenize=False,
    token_id_prompts=False,
    batch_prompts=False,
    max_top_logprobs=20,
    echo_token_texts=True,
)


class DeepInfraProvider(OpenAICompatibleProvider):
    completion_logprobs: ClassVar[int] = 1
    chat_top_logprobs: ClassVar[int] = 1
    echo_max_tokens: ClassVar[int] = 1
    null_logprobs_hint: ClassVar[str] = "DeepInfra does not promise logprobs for every model: run blackbox-audit probe"

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return DEEPINFRA_CAPABILITIES


ADAPTER = DeepInfraProvider
