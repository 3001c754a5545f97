"""Fireworks (api.fireworks.ai/inference/v1), per its published reference
(docs.fireworks.ai/api-reference/post-completions and post-chatcompletions):

- Generation asks `raw_output: true` and reads `choices[].raw_output.completion_logprobs.content`,
  whose entries carry two numbers: `logprob` and `sampling_logprob`. We use `logprob`, the
  model's raw log-probability; `sampling_logprob` is the token's under the sampling distribution
  (after temperature and top-p), which is not what perplexity differencing compares. An entry
  without `logprob` is refused, even when `sampling_logprob` is there.
- Prompts may be token ids; `echo` returns the prompt's logprobs in `choices[].logprobs`, with the
  prompt's ids in `prompt_token_ids`. There is no /tokenize: without a local tokenizer a text
  prompt is scored and the continuation located by the echoed token texts; with one
  (`--reference-tokenizer PATH`) token ids are sent and checked against `prompt_token_ids`.
- `echo_last` (echo only the last N prompt tokens) is not used: locating by text needs the whole echo.
- Chat prompts longer than `prompt_truncate_len` (default 1500 tokens) are truncated by the
  service: keep chat prompts short.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.openai_compatible import OwnLogprobsProvider
from providers.records import Capabilities, GenerateRequest, TokenLogprob

FIREWORKS_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=False,
    echo_scoring=True,
    prompt_logprobs=False,
    tokenizer="none",
    chat_tokenize=False,
    token_id_prompts=True,
    batch_prompts=True,
    max_top_logprobs=5,
    echo_token_texts=True,
    generation_logprobs="raw",
)
"""`generation_logprobs="raw"`: because we read `logprob`, never `sampling_logprob`."""


class FireworksProvider(OwnLogprobsProvider):
    completion_logprobs: ClassVar[int] = 1
    echo_max_tokens: ClassVar[int] = 1

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return FIREWORKS_CAPABILITIES

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        body["raw_output"] = True
        return path, body

    def choice_tokens(self, choice: Any, i: int) -> list[TokenLogprob]:
        where = f"choices[{i}].raw_output"
        raw = self.wire.get(choice, "raw_output", where)
        logprobs = self.wire.logprobs_of(raw, "completion_logprobs", f"{where}.completion_logprobs")
        content = self.wire.get(logprobs, "content", f"{where}.completion_logprobs.content")
        field = f"{where}.completion_logprobs.content"
        if isinstance(content, list):
            for j, entry in enumerate(content):
                if isinstance(entry, dict) and "logprob" not in entry and "sampling_logprob" in entry:
                    raise self.wire.fail(
                        f"{field}[{j}].logprob",
                        "missing; only sampling_logprob is there (the sampling distribution's, after temperature"
                        " and top-p), which never stands in for the raw logprob",
                    )
        tokens = self.wire.content_entries(content, field, id_key="token_id")
        ids = raw.get("completion_token_ids") if isinstance(raw, dict) else None
        if ids is not None and self.wire.token_ids(ids, f"{where}.completion_token_ids") != [
            t.token_id for t in tokens
        ]:
            raise self.wire.fail(f"{where}.completion_token_ids", "differ from the ids of the logprob entries")
        return tokens


ADAPTER = FireworksProvider
