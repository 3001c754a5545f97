"""A self-hosted llama.cpp server (`llama-server`), per its README (tools/server/README.md) and
its response code (tools/server/server-task.cpp):

- Generation with logprobs on /v1/completions and /v1/chat/completions. The logprobs ask needs a
  positive count (`logprobs` / `top_logprobs` set `n_probs`; 0 returns none), and on both
  endpoints they come back as `logprobs.content` entries `{id, token, bytes, logprob, top_logprobs}`.
- An assistant message last in `messages` is continued (`--prefill-assistant`, on by default).
- /tokenize (`{content, add_special}` -> `{tokens}`) and /detokenize (`{tokens}` -> `{content}`)
  beside /v1.
- /v1/completions silently ignores `echo`: one entry (the generated token) comes back instead of
  the prompt's. It can be a target, never a reference; an echo answer is refused by its count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from providers.openai_compatible import OwnLogprobsProvider
from providers.records import Capabilities, Prompt, TokenLogprob

LLAMACPP_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=True,
    echo_scoring=False,
    prompt_logprobs=False,
    tokenizer="server",
    chat_tokenize=False,
    token_id_prompts=True,
    batch_prompts=False,
    max_top_logprobs=20,
)


class LlamaCppProvider(OwnLogprobsProvider):
    completion_logprobs: ClassVar[int] = 1
    chat_top_logprobs: ClassVar[int] = 1

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return LLAMACPP_CAPABILITIES

    def choice_tokens(self, choice: Any, i: int) -> list[TokenLogprob]:
        where = f"choices[{i}].logprobs"
        content = self.wire.get(self.wire.logprobs_of(choice, "logprobs", where), "content", f"{where}.content")
        return self.wire.content_entries(content, f"{where}.content", id_key="id")

    # -- tokenizer routes beside /v1, in llama.cpp's own words ---------------------------

    def tokenize_request(self, prompt: Prompt, add_special_tokens: bool) -> tuple[str, dict[str, Any]]:
        assert isinstance(prompt, str)  # chat_tokenize is not declared
        return self.root_url + "/tokenize", {"content": prompt, "add_special": add_special_tokens}

    def detokenize_request(self, token_ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
        return self.root_url + "/detokenize", {"tokens": list(token_ids)}

    def parse_detokenized(self, payload: Any) -> str:
        text = self.wire.get(payload, "content", "content")
        if not isinstance(text, str):
            raise self.wire.fail("content", "expected text")
        return text

    def parse_scored(self, payload: Any, prompt_ids: list[int], n_scored: int) -> list[TokenLogprob]:
        """Only reached when echo is forced on (the probe): the entry count shows the echo was ignored."""
        choice = self.wire.choices(payload, 1)[0]
        logprobs = self.wire.logprobs_of(choice, "logprobs", "choices[0].logprobs")
        content = self.wire.get(logprobs, "content", "choices[0].logprobs.content")
        count = len(content) if isinstance(content, list) else 0
        raise self.wire.fail(
            "choices[0].logprobs.content",
            f"echo covers {count} tokens but the prompt has {len(prompt_ids)}: llama.cpp's server ignores echo;"
            " score with a vLLM or SGLang reference",
        )


ADAPTER = LlamaCppProvider
