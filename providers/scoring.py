"""Scoring a continuation; the continuation is the unit of truth:
1. context ids: the endpoint's own tokenization of the context (chat template included),
   or, for raw text, an adopted local copy of its tokenizer (`adopt_tokenizer`);
2. continuation ids: the continuation tokenized alone, without special tokens
   (as lm-evaluation-harness does), accepted only if they decode to exactly the continuation;
   otherwise the joint tokenization of context + continuation is used and the straddling
   first token is reported (`alignment="widened"`, `n_context_chars`);
3. one echo (or `prompt_logprobs`) request on the concatenated ids, several per request
   when the endpoint takes a list of prompts; the last len(continuation ids) are kept.

An endpoint that takes no token ids but echoes each prompt token's text (`echo_token_texts`:
Together, Fireworks, DeepInfra) is sent the text context + continuation instead, and the
continuation is located by the echoed texts, which must spell it exactly (`Wire.align_echoed_text`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from providers.batching import gather, merge_prompts, split_choices
from providers.errors import AlignmentError, CapabilityError
from providers.records import ChatMessage, Prompt, ScoredContinuation, ScoreRequest, TokenLogprob, ends_with_prefill
from providers.wire import EchoedToken

if TYPE_CHECKING:
    from collections.abc import Sequence

    from providers.http import HttpClient
    from providers.records import Capabilities
    from providers.wire import Wire

ScoreVia = Literal["echo", "prompt_logprobs"]


@dataclass(frozen=True)
class _Prepared:
    """A continuation's scoring plan: the ids to send and how many trailing ones to keep."""

    prompt_ids: list[int]
    n_scored: int
    alignment: Literal["exact", "widened"]
    covered_text: str
    n_context_chars: int


class ContinuationScorer:
    """The scoring half of an adapter (`OpenAICompatibleProvider` mixes it in); dialects override
    its hooks: `score_path`, `score_body`, `parse_scored`, `score_text_body`, `echoed_prompt_tokens`."""

    http: HttpClient
    model: str
    capabilities: Capabilities
    wire: Wire
    score_via: ScoreVia
    max_batch_prompts: int
    echo_max_tokens: ClassVar[int] = 0

    if TYPE_CHECKING:

        def check_can_score(self, context: Prompt) -> None: ...
        def _tokenizes_locally(self, prompt: Prompt) -> bool: ...
        async def tokenize(self, prompt: Prompt, *, add_special_tokens: bool = True) -> list[int]: ...
        async def detokenize(self, token_ids: Sequence[int]) -> str: ...

    async def score(self, request: ScoreRequest) -> ScoredContinuation:
        return (await self.score_many([request]))[0]

    async def score_many(self, requests: Sequence[ScoreRequest]) -> list[ScoredContinuation]:
        for request in requests:
            self.check_can_score(request.context)
        if not self.scores_by_ids:
            return await gather(*(self._score_text(r) for r in requests))
        if all(self._tokenizes_locally(r.context) for r in requests):
            # In-process tokenization never waits: one task per request would only add overhead.
            prepared = [await self._prepare(r) for r in requests]
        else:
            prepared = await gather(*(self._prepare(r) for r in requests))
        results: list[ScoredContinuation] = []
        for start in range(0, len(prepared), self.max_batch_prompts):
            chunk = prepared[start : start + self.max_batch_prompts]
            results.extend(await self._score_prepared(chunk))
        return results

    async def _prepare(self, request: ScoreRequest) -> _Prepared:
        if self._tokenizes_locally(request.context):  # nothing to wait for: no tasks
            context_ids = await self.tokenize(request.context)
            continuation_ids = await self.tokenize(request.continuation, add_special_tokens=False)
        else:
            context_ids, continuation_ids = await gather(
                self.tokenize(request.context),
                self.tokenize(request.continuation, add_special_tokens=False),
            )
        if not context_ids:
            raise AlignmentError(f"{self.wire.provider}: the context tokenizes to nothing; nothing to condition on")
        if continuation_ids and await self.detokenize(continuation_ids) == request.continuation:
            return _Prepared(context_ids + continuation_ids, len(continuation_ids), "exact", request.continuation, 0)
        return await self._prepare_joint(request, context_ids)

    async def _prepare_joint(self, request: ScoreRequest, context_ids: list[int]) -> _Prepared:
        """Canonical tokenization of context + continuation; report a straddling first token."""
        joint_ids = await self.tokenize(_append(request.context, request.continuation))
        shared = 0
        for a, b in zip(context_ids, joint_ids, strict=False):
            if a != b:
                break
            shared += 1
        if shared == 0 or shared == len(joint_ids):
            raise AlignmentError(
                f"{self.wire.provider}: cannot locate the continuation {request.continuation[:40]!r} in the tokens"
            )
        covered = await self.detokenize(joint_ids[shared:])
        context_text = request.context if isinstance(request.context, str) else request.context[-1].content
        n_context_chars = len(covered) - len(request.continuation)
        if (
            not covered.endswith(request.continuation)
            or n_context_chars < 0
            or not context_text.endswith(covered[:n_context_chars])
        ):
            raise AlignmentError(
                f"{self.wire.provider}: the scored tokens decode to {covered[:60]!r}, which does not end with the"
                f" continuation {request.continuation[:60]!r}"
            )
        alignment: Literal["exact", "widened"] = "exact" if n_context_chars == 0 else "widened"
        return _Prepared(joint_ids, len(joint_ids) - shared, alignment, covered, n_context_chars)

    @property
    def scores_by_ids(self) -> bool:
        """Token ids go to the endpoint when it takes them and we can make them; otherwise the
        text goes, and the echoed token texts locate the continuation."""
        caps = self.capabilities
        return caps.token_id_prompts and caps.tokenize

    def score_path(self) -> str:
        return "/completions"

    def score_body(self, prompt_ids: list[int]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt_ids}
        if self.score_via == "echo":
            body.update(echo=True, max_tokens=self.echo_max_tokens, logprobs=0)
        else:
            body.update(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        return body

    def parse_scored(self, payload: Any, prompt_ids: list[int], n_scored: int) -> list[TokenLogprob]:
        """The last `n_scored` prompt tokens' logprobs from one prompt's answer."""
        choice = self.wire.choices(payload, 1)[0]
        if self.score_via == "echo":
            n_generated = self.wire.usage(payload).completion_tokens if self.echo_max_tokens else 0
            return self.wire.echo_logprobs(choice, 0, prompt_ids, n_scored, n_generated=n_generated)
        entries = self.wire.get(choice, "prompt_logprobs", "choices[0].prompt_logprobs")
        return self.wire.prompt_logprobs(entries, "choices[0].prompt_logprobs", prompt_ids, n_scored)

    def merge_score_bodies(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return merge_prompts(bodies)

    def split_scored(self, payload: Any, k: int) -> list[Any]:
        return split_choices(payload, k, 1)

    async def _score_prepared(self, chunk: list[_Prepared]) -> list[ScoredContinuation]:
        bodies = [self.score_body(p.prompt_ids) for p in chunk]

        def parse_one(p: _Prepared):
            return lambda payload: self.parse_scored(payload, p.prompt_ids, p.n_scored)

        if len(chunk) == 1:
            token_lists = [await self.http.request("POST", self.score_path(), bodies[0], parse_one(chunk[0]))]
        else:
            parsers = [parse_one(p) for p in chunk]
            token_lists = await self.http.request_batch(
                self.score_path(),
                bodies,
                merge=self.merge_score_bodies,
                split=self.split_scored,
                parse=parsers,
            )
        return [
            ScoredContinuation(
                tokens=tuple(tokens),
                alignment=p.alignment,
                covered_text=p.covered_text,
                n_context_chars=p.n_context_chars,
            )
            for p, tokens in zip(chunk, token_lists, strict=True)
        ]

    # -- scoring text prompts by the echoed token texts ------------------------------------

    def score_text_body(self, prompt: str) -> dict[str, Any]:
        return {"model": self.model, "prompt": prompt, "echo": True, "max_tokens": self.echo_max_tokens, "logprobs": 1}

    echo_field: ClassVar[str] = "choices[0].logprobs"
    """Where `echoed_prompt_tokens` reads the echo, for error messages."""

    def echoed_prompt_tokens(self, payload: Any) -> list[EchoedToken]:
        """The prompt's tokens from an OpenAI-shaped echo: `choices[0].logprobs`, the generated
        tokens (`usage.completion_tokens` of them) dropped from the end."""
        choice = self.wire.choices(payload, 1)[0]
        logprobs = self.wire.logprobs_of(choice, "logprobs", "choices[0].logprobs")
        texts = self.wire.get(logprobs, "tokens", "choices[0].logprobs.tokens")
        values = self.wire.get(logprobs, "token_logprobs", "choices[0].logprobs.token_logprobs")
        if not isinstance(texts, list) or not isinstance(values, list) or len(texts) != len(values):
            raise self.wire.fail("choices[0].logprobs", "tokens and token_logprobs are not lists of one length")
        ids = logprobs.get("token_ids") if isinstance(logprobs, dict) else None
        if ids is not None:
            ids = self.wire.token_ids(ids, "choices[0].logprobs.token_ids", len(texts))
        n_generated = 0
        if self.echo_max_tokens:
            n_generated = self.wire.usage(payload).completion_tokens
            if n_generated > len(texts):
                raise self.wire.fail(
                    "usage.completion_tokens", f"{n_generated} generated tokens but only {len(texts)} echoed"
                )
        keep = len(texts) - n_generated
        for j in range(keep):
            if not isinstance(texts[j], str):
                raise self.wire.fail(f"choices[0].logprobs.tokens[{j}]", f"expected text, got {texts[j]!r}")
        return [EchoedToken(texts[j], values[j], None if ids is None else ids[j]) for j in range(keep)]

    async def _score_text(self, request: ScoreRequest) -> ScoredContinuation:
        if not isinstance(request.context, str):
            raise CapabilityError(f"{self.wire.provider} scores raw text only (no chat template as token ids)")
        context = request.context

        def parse(payload: Any) -> ScoredContinuation:
            echoed = self.echoed_prompt_tokens(payload)
            return self.wire.align_echoed_text(echoed, context, request.continuation, self.echo_field)

        body = self.score_text_body(context + request.continuation)
        return await self.http.request("POST", self.score_path(), body, parse)


def _append(context: Prompt, continuation: str) -> Prompt:
    if isinstance(context, str):
        return context + continuation
    if ends_with_prefill(context):
        last = context[-1]
        return (*context[:-1], ChatMessage(role="assistant", content=last.content + continuation))
    return (*context, ChatMessage(role="assistant", content=continuation))
