"""The adapter for OpenAI-compatible endpoints; dialects subclass it for their quirks.

Scoring a continuation (the continuation is the unit of truth):
1. context ids: the endpoint's own tokenization of the context (chat template included),
   or, for raw text, an adopted local copy of its tokenizer (`adopt_tokenizer`);
2. continuation ids: the continuation tokenized alone, without special tokens
   (as lm-evaluation-harness does), accepted only if they decode to exactly the continuation;
   otherwise the joint tokenization of context + continuation is used and the straddling
   first token is reported (`alignment="widened"`, `n_context_chars`);
3. one echo (or `prompt_logprobs`) request on the concatenated ids, several per request
   when the endpoint takes a list of prompts; the last len(continuation ids) are kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import anyio

from providers.errors import AlignmentError, CapabilityError, first_error
from providers.http import HttpClient
from providers.records import (
    Capabilities,
    ChatMessage,
    GenerateRequest,
    Generation,
    Prompt,
    ScoredContinuation,
    ScoreRequest,
    TokenLogprob,
    ends_with_prefill,
    is_chat,
)
from providers.tokenizer import CHECK_TEXTS, LocalTokenizer, TokenizerMismatchError
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


class OpenAICompatibleProvider:
    """Any OpenAI-compatible server; abilities are declared (or probed) in `capabilities`."""

    dialect: ClassVar[str] = "generic"
    echo_max_tokens: ClassVar[int] = 0
    stop_token_in_logprobs: ClassVar[bool] = False

    def __init__(
        self,
        http: HttpClient,
        model: str,
        capabilities: Capabilities,
        *,
        score_via: ScoreVia | None = None,
        max_batch_prompts: int = 16,
    ):
        self.http = http
        self.model = model
        self.capabilities = capabilities
        self.wire = Wire(f"{self.dialect} {http.base_url} ({model})")
        self.score_via: ScoreVia = score_via or ("echo" if capabilities.echo_scoring else "prompt_logprobs")
        self.max_batch_prompts = max_batch_prompts if capabilities.batch_prompts else 1
        self.server_version: str | None = None
        self.local_tokenizer: LocalTokenizer | None = None
        self.tokenizer_source = "server" if capabilities.tokenize else "none"

    @property
    def base_url(self) -> str:
        return self.http.base_url

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- capability checks, before any request --------------------------------------------

    def check_can_generate(self, prompt: Prompt) -> None:
        caps = self.capabilities
        if not is_chat(prompt) and not caps.generate_raw:
            raise CapabilityError(
                f"{self.wire.provider} cannot generate from raw text (/v1/completions with logprobs);"
                " use the chat framing"
            )
        if is_chat(prompt) and not caps.generate_chat:
            raise CapabilityError(
                f"{self.wire.provider} cannot generate chat completions with logprobs; use the raw framing"
            )
        if ends_with_prefill(prompt) and not caps.chat_prefill:
            raise CapabilityError(
                f"{self.wire.provider} cannot continue an assistant prefill (no continue_final_message),"
                " which the chat framing needs: use --framing raw with a model that serves /v1/completions,"
                " or audit a self-hosted copy of the model on vLLM"
            )

    def check_can_score(self, context: Prompt) -> None:
        caps = self.capabilities
        missing = [
            name
            for name, ok in (
                ("echo or prompt_logprobs scoring", caps.echo_scoring or caps.prompt_logprobs),
                ("tokenization (/tokenize or a local tokenizer)", caps.tokenize),
                ("token-id prompts", caps.token_id_prompts),
                ("chat-template tokenization", caps.chat_tokenize or not is_chat(context)),
            )
            if not ok
        ]
        if missing:
            raise CapabilityError(
                f"{self.wire.provider} cannot score given text: missing {', '.join(missing)}."
                " Use a self-hosted vLLM server (blackbox-audit local-vllm up) as the reference."
            )

    # -- generation -----------------------------------------------------------------------

    def _sampling(self, request: GenerateRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        body = self._sampling(request)
        if is_chat(request.prompt):
            body["messages"] = [m.model_dump() for m in request.prompt]
            body["logprobs"] = True
            body["top_logprobs"] = 0
            return "/chat/completions", body
        body["prompt"] = request.prompt
        body["logprobs"] = 0
        return "/completions", body

    async def generate(self, request: GenerateRequest) -> Generation:
        return (await self.generate_many([request]))[0]

    async def generate_many(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Raw prompts with equal settings go several to a request; chat ones one each."""
        for request in requests:
            self.check_can_generate(request.prompt)
        plans = [self.generate_body(r) for r in requests]
        results: list[Generation | None] = [None] * len(requests)
        batchable = [i for i, (path, _) in enumerate(plans) if path == "/completions" and self.max_batch_prompts > 1]
        singles = sorted(set(range(len(requests))) - set(batchable))

        async def run_single(i: int) -> None:
            path, body = plans[i]
            n = requests[i].n
            parse = self._parse_chat_generation if path == "/chat/completions" else self._parse_generation
            results[i] = await self.http.request("POST", path, body, lambda p: parse(p, n))

        async def run_batch(indices: list[int]) -> None:
            n = requests[indices[0]].n
            generations = await self.http.request_batch(
                "/completions",
                [plans[i][1] for i in indices],
                merge=_merge_prompts,
                split=lambda payload, k: _split_choices(payload, k, n),
                parse=lambda p: self._parse_generation(p, n),
            )
            for i, generation in zip(indices, generations, strict=True):
                results[i] = generation

        await _gather(
            *(run_single(i) for i in singles),
            *(run_batch(g) for g in _groups_of_equal_settings(batchable, plans, self.max_batch_prompts)),
        )
        return [r for r in results if r is not None]

    def _parse_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n)
        return Generation(
            completions=tuple(
                self.wire.completion(c, i, stop_token_included=self.stop_token_in_logprobs)
                for i, c in enumerate(choices)
            ),
            usage=self.wire.usage(payload),
        )

    def _parse_chat_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n)
        return Generation(
            completions=tuple(
                self.wire.chat_completion(c, i, stop_token_included=self.stop_token_in_logprobs)
                for i, c in enumerate(choices)
            ),
            usage=self.wire.usage(payload),
        )

    # -- tokenization -----------------------------------------------------------------------

    async def adopt_tokenizer(self, tokenizer: LocalTokenizer) -> None:
        """Tokenize raw text in process from now on, once `tokenizer` gave the server's exact ids
        (with and without special tokens) and decoded texts on CHECK_TEXTS. A server without
        /tokenize cannot check it: it is adopted on the caller's word, and says so."""
        checked = self.capabilities.tokenize
        if checked:
            cases = [(text, special) for text in CHECK_TEXTS for special in (True, False)]
            server_ids = await _gather(*(self.tokenize(text, add_special_tokens=s) for text, s in cases))
            for (text, special), ids in zip(cases, server_ids, strict=True):
                local_ids = tokenizer.encode(text, add_special_tokens=special)
                if local_ids != ids:
                    raise TokenizerMismatchError(
                        f"{self.wire.provider}: {tokenizer.path} tokenizes {text!r} "
                        f"({'with' if special else 'without'} special tokens) to {local_ids[:16]}, the server to"
                        f" {ids[:16]}; give the served model's own tokenizer.json, or let the server tokenize"
                    )
            plain = [ids for (_, special), ids in zip(cases, server_ids, strict=True) if not special]
            texts = await _gather(*(self.detokenize(ids) for ids in plain))
            for ids, text in zip(plain, texts, strict=True):
                if tokenizer.decode(ids) != text:
                    raise TokenizerMismatchError(
                        f"{self.wire.provider}: {tokenizer.path} decodes {ids[:16]} to {tokenizer.decode(ids)!r},"
                        f" the server to {text!r}"
                    )
        self.local_tokenizer = tokenizer
        self.tokenizer_source = (
            f"local {tokenizer.path} ({'matches the server' if checked else 'unchecked: no /tokenize'})"
        )
        self.capabilities = self.capabilities.model_copy(update={"tokenize": True})

    def _tokenizes_locally(self, prompt: Prompt) -> bool:
        """Raw text, once a tokenizer is adopted; chat templates stay the server's."""
        return self.local_tokenizer is not None and isinstance(prompt, str)

    async def tokenize(self, prompt: Prompt, *, add_special_tokens: bool = True) -> list[int]:
        if self._tokenizes_locally(prompt):
            return self.local_tokenizer.encode(prompt, add_special_tokens=add_special_tokens)  # type: ignore[union-attr]
        if not self.capabilities.tokenize or (is_chat(prompt) and not self.capabilities.chat_tokenize):
            raise CapabilityError(f"{self.wire.provider} has no tokenizer for this prompt")
        body: dict[str, Any] = {"model": self.model}
        if is_chat(prompt):
            prefill = ends_with_prefill(prompt)
            body.update(
                messages=[m.model_dump() for m in prompt],
                add_generation_prompt=not prefill,
                continue_final_message=prefill,
            )
        else:
            body.update(prompt=prompt, add_special_tokens=add_special_tokens)
        return await self.http.request("POST", self.tokenize_path("/tokenize"), body, self.wire.tokenize)

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        if self.local_tokenizer is not None:
            return self.local_tokenizer.decode(token_ids)
        body = {"model": self.model, "tokens": list(token_ids)}
        return await self.http.request("POST", self.tokenize_path("/detokenize"), body, self.wire.detokenize)

    def tokenize_path(self, path: str) -> str:
        """vLLM serves /tokenize beside /v1, not under it."""
        return path

    # -- scoring ----------------------------------------------------------------------------

    async def score(self, request: ScoreRequest) -> ScoredContinuation:
        return (await self.score_many([request]))[0]

    async def score_many(self, requests: Sequence[ScoreRequest]) -> list[ScoredContinuation]:
        for request in requests:
            self.check_can_score(request.context)
        if all(self._tokenizes_locally(r.context) for r in requests):
            # In-process tokenization never waits: one task per request would only add overhead.
            prepared = [await self._prepare(r) for r in requests]
        else:
            prepared = await _gather(*(self._prepare(r) for r in requests))
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
            context_ids, continuation_ids = await _gather(
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
        for a, b in zip(context_ids, joint_ids):
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
        alignment = "exact" if n_context_chars == 0 else "widened"
        return _Prepared(joint_ids, len(joint_ids) - shared, alignment, covered, n_context_chars)

    def score_body(self, prompt_ids: list[int]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt_ids}
        if self.score_via == "echo":
            body.update(echo=True, max_tokens=self.echo_max_tokens, logprobs=0)
        else:
            body.update(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        return body

    async def _score_prepared(self, chunk: list[_Prepared]) -> list[ScoredContinuation]:
        bodies = [self.score_body(p.prompt_ids) for p in chunk]

        def parse_one(p: _Prepared):
            def parse(payload: Any) -> list[TokenLogprob]:
                choice = self.wire.choices(payload, 1)[0]
                if self.score_via == "echo":
                    return self.wire.echo_logprobs(choice, 0, p.prompt_ids, p.n_scored)
                entries = self.wire.get(choice, "prompt_logprobs", "choices[0].prompt_logprobs")
                return self.wire.prompt_logprobs(entries, "choices[0].prompt_logprobs", p.prompt_ids, p.n_scored)

            return parse

        if len(chunk) == 1:
            token_lists = [await self.http.request("POST", "/completions", bodies[0], parse_one(chunk[0]))]
        else:
            parsers = [parse_one(p) for p in chunk]
            token_lists = await self.http.request_batch(
                "/completions",
                bodies,
                merge=_merge_prompts,
                split=lambda payload, k: _split_choices(payload, k, 1),
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


def _append(context: Prompt, continuation: str) -> Prompt:
    if isinstance(context, str):
        return context + continuation
    if ends_with_prefill(context):
        last = context[-1]
        return (*context[:-1], ChatMessage(role="assistant", content=last.content + continuation))
    return (*context, ChatMessage(role="assistant", content=continuation))


async def _gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await concurrently; on failure raise the first error itself, not an ExceptionGroup."""
    results: list[Any] = [None] * len(awaitables)

    async def run(i: int, aw: Awaitable[Any]) -> None:
        results[i] = await aw

    try:
        async with anyio.create_task_group() as tg:
            for i, aw in enumerate(awaitables):
                tg.start_soon(run, i, aw)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results


def _merge_prompts(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """One /v1/completions body for several prompts with otherwise equal settings."""
    if len(bodies) == 1:
        return bodies[0]
    merged = {k: v for k, v in bodies[0].items() if k != "prompt"}
    merged["prompt"] = [b["prompt"] for b in bodies]
    return merged


def _split_choices(payload: Any, k: int, n: int) -> list[Any]:
    """Per-prompt payloads from a batched answer (choice index = prompt * n + j)."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or len(choices) != k * n:
        return [payload] * k  # each part then fails validation with a precise message
    parts: list[list[Any]] = [[] for _ in range(k)]
    for choice in choices:
        index = choice.get("index") if isinstance(choice, dict) else None
        if not isinstance(index, int) or not 0 <= index < k * n:
            return [payload] * k
        parts[index // n].append({**choice, "index": index % n})
    return [{"choices": part} for part in parts]


def _groups_of_equal_settings(
    indices: list[int], plans: list[tuple[str, dict[str, Any]]], size: int
) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i in indices:
        settings = repr(sorted((k, v) for k, v in plans[i][1].items() if k != "prompt"))
        groups.setdefault(settings, []).append(i)
    return [g[s : s + size] for g in groups.values() for s in range(0, len(g), size)]
