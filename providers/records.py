"""Typed records at the provider boundary. Logprobs are natural logs (nats)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatMessage(Record):
    role: Literal["system", "user", "assistant"]
    content: str


Messages = tuple[ChatMessage, ...]
Prompt = str | Messages
"""Raw text, or chat messages whose last message may be an assistant prefill."""


def is_chat(prompt: Prompt) -> bool:
    return not isinstance(prompt, str)


def ends_with_prefill(prompt: Prompt) -> bool:
    return is_chat(prompt) and bool(prompt) and prompt[-1].role == "assistant"


class TokenLogprob(Record):
    """One token and its logprob, on either side of an audit. `text` is the text it
    contributes as the endpoint decoded it (display and alignment checks); `token_id` is
    None where the endpoint does not say."""

    text: str
    logprob: float
    token_id: int | None = None


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerateRequest(Record):
    prompt: Prompt
    max_tokens: int = Field(100, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    n: int = Field(1, ge=1)
    stop: tuple[str, ...] = ()


class Completion(Record):
    """One generated completion with the logprob of every token that spells `text`.

    A stop token (end of sequence) spells no text; where the endpoint returns its logprob
    (vLLM does) it is kept apart in `stop_token`, so `tokens` covers exactly `text`.
    """

    text: str
    tokens: tuple[TokenLogprob, ...]
    finish_reason: str | None
    stop_token: TokenLogprob | None = None


class Generation(Record):
    completions: tuple[Completion, ...]
    usage: Usage


class ScoreRequest(Record):
    context: Prompt
    continuation: str = Field(min_length=1)


Alignment = Literal["exact", "widened"]


class ScoredContinuation(Record):
    """Logprobs of the tokens covering a continuation, conditioned on its context.

    `alignment == "exact"`: the tokens decode to exactly the continuation.
    `"widened"`: the first token straddles the context/continuation boundary, so the tokens
    cover `covered_text` = (the last `n_context_chars` characters of the context) + continuation.
    """

    tokens: tuple[TokenLogprob, ...]
    alignment: Alignment
    covered_text: str
    n_context_chars: int = 0


class Capabilities(Record):
    """What an endpoint can do; checked before the first request."""

    generate_raw: bool
    generate_chat: bool
    chat_prefill: bool
    echo_scoring: bool
    prompt_logprobs: bool
    tokenize: bool
    chat_tokenize: bool
    token_id_prompts: bool
    batch_prompts: bool
    max_top_logprobs: int

    @property
    def can_score_raw(self) -> bool:
        return (self.echo_scoring or self.prompt_logprobs) and self.tokenize and self.token_id_prompts

    @property
    def can_score_chat(self) -> bool:
        return self.can_score_raw and self.chat_tokenize
