"""Typed records at the provider boundary. Logprobs are natural logs (nats)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeIs


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatMessage(Record):
    role: Literal["system", "user", "assistant"]
    content: str


Messages = tuple[ChatMessage, ...]
Prompt = str | Messages
"""Raw text, or chat messages whose last message may be an assistant prefill."""


def is_chat(prompt: Prompt) -> TypeIs[Messages]:
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


class ServedModel(Record):
    """Which model the server says answered: the `model` of its response (a hosted service names
    the dated snapshot behind an alias there) and its `system_fingerprint` (the backend
    configuration), each None where it sends none."""

    model: str | None = None
    system_fingerprint: str | None = None


class Generation(Record):
    completions: tuple[Completion, ...]
    usage: Usage
    served: ServedModel | None = None


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


TokenizerKind = Literal["server", "tiktoken", "local", "none"]
"""Where an endpoint's raw text is tokenized: its own /tokenize ("server"), tiktoken in process
(OpenAI's published encodings), an adopted tokenizer.json in process ("local"), or nowhere."""

PrefillTokenizerKind = Literal["server", "tiktoken", "local", "regex-fallback"]

LogprobKind = Literal["raw", "processed", "unknown"]
"""Whether generated tokens' logprobs are the model's own ("raw": before temperature, top-p and
penalties) or the sampling distribution's ("processed"); "unknown" until the probe measures it."""


class Capabilities(Record):
    """What an endpoint can do, declared by its dialect and checked before the first request.

    The pipeline asks these, never the dialect's name: `generate_raw` / `generate_chat` (with the
    logprobs of the generated tokens), `chat_prefill`, `can_score_raw` / `can_score_chat`,
    `prefill_tokenizer`, `same_tokenizer_family(other)`, `max_top_logprobs`, `batch_prompts`.
    """

    generate_raw: bool
    generate_chat: bool
    chat_prefill: bool
    echo_scoring: bool
    prompt_logprobs: bool
    tokenizer: TokenizerKind
    chat_tokenize: bool
    token_id_prompts: bool
    batch_prompts: bool
    max_top_logprobs: int = Field(ge=0)
    echo_token_texts: bool = False
    """The echo names every prompt token's text, so a text prompt can be scored without a
    tokenizer: the continuation is located by the texts, which must spell it exactly."""
    generation_logprobs: LogprobKind = "unknown"
    tokenizer_family: str | None = None
    """A name for the vocabulary when the dialect knows it ("tiktoken:o200k_base"); None when only
    comparing token ids can tell whether two endpoints share a tokenizer."""

    @property
    def tokenize(self) -> bool:
        """Raw text can be turned into this endpoint's token ids (server, tiktoken or local)."""
        return self.tokenizer != "none"

    @property
    def can_score_raw(self) -> bool:
        scoring = self.echo_scoring or self.prompt_logprobs
        by_ids = self.tokenize and self.token_id_prompts
        return scoring and (by_ids or (self.echo_scoring and self.echo_token_texts))

    @property
    def can_score_chat(self) -> bool:
        """Chat-framed scoring needs the endpoint's own chat template as token ids."""
        return (
            (self.echo_scoring or self.prompt_logprobs)
            and self.tokenize
            and self.token_id_prompts
            and self.chat_tokenize
        )

    @property
    def prefill_tokenizer(self) -> PrefillTokenizerKind:
        """How to cut prefills in the target's own tokens: `provider.tokenize` / `detokenize` work
        for raw text whenever this is not "regex-fallback" (a documented word-piece approximation)."""
        return "regex-fallback" if self.tokenizer == "none" else self.tokenizer

    def same_tokenizer_family(self, other: Capabilities) -> bool | None:
        """True / False when the declared facts decide whether two endpoints tokenize alike;
        None when only comparing their token ids on a probe text can tell."""
        if not (self.tokenize and other.tokenize):
            return False
        if self.tokenizer_family is not None and other.tokenizer_family is not None:
            return self.tokenizer_family == other.tokenizer_family
        if (self.tokenizer == "tiktoken") != (other.tokenizer == "tiktoken"):
            return False  # OpenAI's vocabularies are served by OpenAI alone
        return None
