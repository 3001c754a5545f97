"""Together (api.together.xyz), per its published reference (docs.together.ai/reference and the
OpenAPI spec in togethercomputer/openapi):

- `logprobs` is an integer 0-20 on /completions *and* on chat (not OpenAI's boolean); we ask 1.
- Logprobs come back flat (`LogprobsPart`: `tokens`, `token_logprobs`, `token_ids`) on both
  endpoints, not in OpenAI's chat `content` list; completion choices carry no `index`.
- `echo: true` puts the prompt's logprobs in a top-level `prompt[]`, not in `choices`.
- Prompts are text only (no token ids) and there is no /tokenize: a continuation is scored from
  the echo of the text context + continuation, located by the echoed token texts.
- The first prompt entry is never scored (an old bug once gave it a positive logprob).
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.openai_compatible import OwnLogprobsProvider
from providers.records import Capabilities, GenerateRequest, TokenLogprob, is_chat
from providers.wire import EchoedToken

TOGETHER_CAPABILITIES = Capabilities(
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


class TogetherProvider(OwnLogprobsProvider):
    completion_logprobs: ClassVar[int] = 1
    echo_max_tokens: ClassVar[int] = 1
    """The generated token goes to `choices`, the prompt's to `prompt[]`: nothing to drop."""
    choices_indexed: ClassVar[bool] = False
    echo_field: ClassVar[str] = "prompt[0].logprobs"

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return TOGETHER_CAPABILITIES

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        if is_chat(request.prompt):
            body.pop("top_logprobs", None)
            body["logprobs"] = 1
        return path, body

    def choice_tokens(self, choice: Any, i: int) -> list[TokenLogprob]:
        where = f"choices[{i}].logprobs"
        return self.wire.flat_logprobs(self.wire.logprobs_of(choice, "logprobs", where), where)

    def echoed_prompt_tokens(self, payload: Any) -> list[EchoedToken]:
        """`prompt[0].logprobs`: the echoed prompt, apart from the generated `choices`."""
        prompt = payload.get("prompt") if isinstance(payload, dict) else None
        if not prompt:
            raise self.wire.fail(
                "prompt", "missing: the echoed prompt did not come back (echo ignored?); nothing to score"
            )
        if not isinstance(prompt, list) or len(prompt) != 1:
            got = len(prompt) if isinstance(prompt, list) else type(prompt).__name__
            raise self.wire.fail("prompt", f"expected one echoed prompt, got {got} (echo ignored?)")
        logprobs = self.wire.logprobs_of(prompt[0], "logprobs", "prompt[0].logprobs")
        texts = self.wire.get(logprobs, "tokens", "prompt[0].logprobs.tokens")
        values = self.wire.get(logprobs, "token_logprobs", "prompt[0].logprobs.token_logprobs")
        if not isinstance(texts, list) or not isinstance(values, list) or len(texts) != len(values):
            raise self.wire.fail("prompt[0].logprobs", "tokens and token_logprobs are not lists of one length")
        ids = logprobs.get("token_ids") if isinstance(logprobs, dict) else None
        if ids is not None:
            ids = self.wire.token_ids(ids, "prompt[0].logprobs.token_ids", len(texts))
        for j, text in enumerate(texts):
            if not isinstance(text, str):
                raise self.wire.fail(f"prompt[0].logprobs.tokens[{j}]", f"expected text, got {text!r}")
        return [EchoedToken(texts[j], values[j], None if ids is None else ids[j]) for j in range(len(texts))]


ADAPTER = TogetherProvider
