"""The adapter for OpenAI-compatible endpoints; dialects subclass it for their quirks.

How a continuation is scored: `providers.scoring`.

Dialects override small hooks, never the flow: request bodies (`generate_body`, `score_body`,
`score_text_body`, `tokenize_request`, `detokenize_request`) and parsers (`_parse_generation`,
`_parse_chat_generation`, `parse_scored`, `echoed_prompt_tokens`, `parse_detokenized`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from providers.batching import gather, groups_of_equal_settings, merge_prompts, split_choices
from providers.errors import CapabilityError
from providers.http import HttpClient
from providers.records import (
    Capabilities,
    Completion,
    GenerateRequest,
    Generation,
    Prompt,
    TokenLogprob,
    ends_with_prefill,
    is_chat,
)
from providers.scoring import ContinuationScorer, ScoreVia
from providers.tokenizer import CHECK_TEXTS, LocalTokenizer, TokenizerMismatchError
from providers.wire import Wire

GENERIC_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=False,
    echo_scoring=False,
    prompt_logprobs=False,
    tokenizer="none",
    chat_tokenize=False,
    token_id_prompts=False,
    batch_prompts=False,
    max_top_logprobs=5,
)
"""What we assume of an unknown server until it is declared or probed (blackbox-audit probe)."""


class OpenAICompatibleProvider(ContinuationScorer):
    """Any OpenAI-compatible server; abilities are declared (or probed) in `capabilities`."""

    echo_max_tokens: ClassVar[int] = 0
    """max_tokens of an echo scoring request; the generated tokens (their count from `usage`)
    are dropped from the end of the echo."""
    stop_token_in_logprobs: ClassVar[bool] = False
    completion_logprobs: ClassVar[int] = 0
    """`logprobs` on /completions generation: 0 asks for the sampled token's alone (vLLM, OpenAI);
    services that read 0 as "none" get 1."""
    chat_top_logprobs: ClassVar[int] = 0
    """`top_logprobs` next to `logprobs: true` on chat generation (DeepInfra and llama.cpp need 1)."""
    null_logprobs_hint: ClassVar[str] = ""
    options_model: ClassVar[type[BaseModel] | None] = None
    """The dialect's own settings (OpenRouter's provider routing), validated from `options`."""

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        """What this dialect promises for `model`, per its service's published reference."""
        return GENERIC_CAPABILITIES

    def __init__(
        self,
        http: HttpClient,
        model: str,
        capabilities: Capabilities,
        *,
        score_via: ScoreVia | None = None,
        max_batch_prompts: int = 16,
        options: BaseModel | dict[str, Any] | None = None,
        dialect: str = "generic",
    ):
        """`dialect`: the name `providers.dialects` knows this adapter by (the registry passes it)."""
        self.dialect = dialect
        self.http = http
        self.model = model
        self.capabilities = capabilities
        self.options = self.validate_options(options)
        self.wire = Wire(f"{self.dialect} {http.base_url} ({model})", null_logprobs_hint=self.null_logprobs_hint)
        self.score_via: ScoreVia = score_via or ("echo" if capabilities.echo_scoring else "prompt_logprobs")
        self.max_batch_prompts = max_batch_prompts if capabilities.batch_prompts else 1
        self.server_version: str | None = None
        self.local_tokenizer: LocalTokenizer | None = None
        self.tokenizer_source: str = capabilities.tokenizer

    def validate_options(self, options: BaseModel | dict[str, Any] | None) -> BaseModel | None:
        if self.options_model is None:
            if options:
                raise CapabilityError(f"the {self.dialect} dialect takes no dialect options (got {options!r})")
            return None
        if isinstance(options, self.options_model):
            return options
        try:
            return self.options_model.model_validate(options or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise CapabilityError(f"{self.dialect} dialect options: {problems}") from None

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
        by_text = caps.echo_scoring and caps.echo_token_texts and not is_chat(context)
        missing = [
            name
            for name, ok in (
                ("echo or prompt_logprobs scoring", caps.echo_scoring or caps.prompt_logprobs),
                ("tokenization (/tokenize or a local tokenizer)", caps.tokenize or by_text),
                ("token-id prompts", caps.token_id_prompts or by_text),
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
            body["top_logprobs"] = self.chat_top_logprobs
            return "/chat/completions", body
        body["prompt"] = request.prompt
        body["logprobs"] = self.completion_logprobs
        return "/completions", body

    async def generate(self, request: GenerateRequest, *, cached: bool = True) -> Generation:
        return (await self.generate_many([request], cached=cached))[0]

    async def generate_many(self, requests: Sequence[GenerateRequest], *, cached: bool = True) -> list[Generation]:
        """Raw prompts with equal settings go several to a request; chat ones one each. `cached=False`
        asks the server even when the cache holds the answer (and stores nothing)."""
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
            results[i] = await self.http.request(
                "POST", path, body, lambda p: self._served(parse(p, n), p), cached=cached
            )

        async def run_batch(indices: list[int]) -> None:
            n = requests[indices[0]].n
            generations = await self.http.request_batch(
                "/completions",
                [plans[i][1] for i in indices],
                merge=merge_prompts,
                split=lambda payload, k: split_choices(payload, k, n),
                parse=lambda p: self._served(self._parse_generation(p, n), p),
                cached=cached,
            )
            for i, generation in zip(indices, generations, strict=True):
                results[i] = generation

        await gather(
            *(run_single(i) for i in singles),
            *(run_batch(g) for g in groups_of_equal_settings(batchable, plans, self.max_batch_prompts)),
        )
        return [r for r in results if r is not None]

    def _served(self, generation: Generation, payload: Any) -> Generation:
        """Which model answered, read the same way whatever the dialect's parser."""
        served = self.wire.served(payload)
        return generation if served is None else generation.model_copy(update={"served": served})

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
        checked = self.capabilities.tokenizer == "server"
        if checked:
            cases = [(text, special) for text in CHECK_TEXTS for special in (True, False)]
            server_ids = await gather(*(self.tokenize(text, add_special_tokens=s) for text, s in cases))
            for (text, special), ids in zip(cases, server_ids, strict=True):
                local_ids = tokenizer.encode(text, add_special_tokens=special)
                if local_ids != ids:
                    raise TokenizerMismatchError(
                        f"{self.wire.provider}: {tokenizer.path} tokenizes {text!r} "
                        f"({'with' if special else 'without'} special tokens) to {local_ids[:16]}, the server to"
                        f" {ids[:16]}; give the served model's own tokenizer.json, or let the server tokenize"
                    )
            plain = [ids for (_, special), ids in zip(cases, server_ids, strict=True) if not special]
            texts = await gather(*(self.detokenize(ids) for ids in plain))
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
        if not checked:  # the server stays the truth where it tokenizes; elsewhere this is the tokenizer now
            self.capabilities = self.capabilities.model_copy(update={"tokenizer": "local"})

    def _tokenizes_locally(self, prompt: Prompt) -> bool:
        """Raw text, once a tokenizer is adopted; chat templates stay the server's."""
        return self.local_tokenizer is not None and isinstance(prompt, str)

    async def tokenize(self, prompt: Prompt, *, add_special_tokens: bool = True) -> list[int]:
        if self._tokenizes_locally(prompt):
            assert self.local_tokenizer is not None and isinstance(prompt, str)
            return self.local_tokenizer.encode(prompt, add_special_tokens=add_special_tokens)
        if self.capabilities.tokenizer not in ("server", "local") or (
            is_chat(prompt) and not self.capabilities.chat_tokenize
        ):
            raise CapabilityError(f"{self.wire.provider} has no tokenizer for this prompt")
        path, body = self.tokenize_request(prompt, add_special_tokens)
        return await self.http.request("POST", path, body, self.wire.tokenize)

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        if self.local_tokenizer is not None:
            return self.local_tokenizer.decode(token_ids)
        if self.capabilities.tokenizer != "server":
            raise CapabilityError(f"{self.wire.provider} has no detokenizer")
        path, body = self.detokenize_request(token_ids)
        return await self.http.request("POST", path, body, self.parse_detokenized)

    def tokenize_request(self, prompt: Prompt, add_special_tokens: bool) -> tuple[str, dict[str, Any]]:
        """vLLM's /tokenize body; the chat form applies the server's chat template."""
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
        return self.tokenize_path("/tokenize"), body

    def detokenize_request(self, token_ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
        return self.tokenize_path("/detokenize"), {"model": self.model, "tokens": list(token_ids)}

    def parse_detokenized(self, payload: Any) -> str:
        return self.wire.detokenize(payload)

    def tokenize_path(self, path: str) -> str:
        """Where the tokenizer routes live: beside /v1 on vLLM, SGLang and llama.cpp."""
        return path

    @property
    def root_url(self) -> str:
        """The server's root, for routes that sit beside /v1 rather than under it."""
        return self.base_url.removesuffix("/v1")


ADAPTER = OpenAICompatibleProvider


class OwnLogprobsProvider(OpenAICompatibleProvider):
    """A service whose generation logprobs come in a shape of its own (`choice_tokens`), the same
    on raw and chat choices; the stop token is split off by spelling the choice's text."""

    choices_indexed: ClassVar[bool] = True
    """False: the choices carry no `index` and are taken in the order given (Together)."""

    def choice_tokens(self, choice: Any, i: int) -> list[TokenLogprob]:
        """The generated tokens of choice `i`, in this service's shape."""
        raise NotImplementedError

    def _completion(self, choice: Any, i: int, text: Any) -> Completion:
        if not isinstance(text, str):
            raise self.wire.fail(f"choices[{i}].text", f"expected text, got {text!r}")
        finish = choice.get("finish_reason")
        spelling, stop = self.wire.split_stop_by_spelling(text, self.choice_tokens(choice, i), finish)
        return Completion(text=text, tokens=tuple(spelling), finish_reason=finish, stop_token=stop)

    def _parse_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n, indexed=self.choices_indexed)
        return Generation(
            completions=tuple(
                self._completion(c, i, self.wire.get(c, "text", f"choices[{i}].text")) for i, c in enumerate(choices)
            ),
            usage=self.wire.usage(payload),
        )

    def _parse_chat_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n, indexed=self.choices_indexed)
        completions = []
        for i, choice in enumerate(choices):
            message = self.wire.get(choice, "message", f"choices[{i}].message")
            completions.append(
                self._completion(choice, i, self.wire.get(message, "content", f"choices[{i}].message.content") or "")
            )
        return Generation(completions=tuple(completions), usage=self.wire.usage(payload))
