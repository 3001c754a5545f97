"""A self-hosted SGLang server, per its published reference (docs.sglang.io: native API,
sampling parameters, OpenAI-compatible API):

- Generation through /v1/completions and /v1/chat/completions with logprobs; an assistant
  prefill continues with `continue_final_message`. A reasoning or tool-call parser
  (`--reasoning-parser`, `--tool-call-parser`) can move text out of `content` while its
  logprobs stay, or group them: chat answers whose tokens do not spell the content are refused.
- Scoring through the native `/generate`: token ids in, `max_new_tokens: 0`, `return_logprob`,
  `logprob_start_len: 0`, `return_text_in_logprobs`; `meta_info.input_token_logprobs` lists
  `[logprob, token_id, text]` per prompt token (the first logprob null). Echo on /v1/completions is not used (unreliable there,
  and its max_tokens must be positive). Start the server with `--disable-radix-cache` for
  prompt logprobs that do not depend on what was cached.
- /tokenize (`{tokens, count, max_model_len}`) and /detokenize (`{text}`) beside /v1.
- SGLang answers /version like vLLM, so "auto" takes it for vLLM: declare `--*-dialect sglang`.
"""

from __future__ import annotations

from typing import Any

from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities, GenerateRequest, Generation, TokenLogprob, ends_with_prefill

SGLANG_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=True,
    echo_scoring=False,
    prompt_logprobs=True,
    tokenizer="server",
    chat_tokenize=False,
    token_id_prompts=True,
    batch_prompts=True,
    max_top_logprobs=20,
)

PARSER_HINT = "a reasoning or tool-call parser moved or grouped tokens: serve audits without --reasoning-parser / --tool-call-parser"


class SGLangProvider(OpenAICompatibleProvider):
    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return SGLANG_CAPABILITIES

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        if ends_with_prefill(request.prompt):
            body.update(add_generation_prompt=False, continue_final_message=True)
        return path, body

    def _parse_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n)
        completions = []
        for i, choice in enumerate(choices):
            completion = self.wire.completion(choice, i)
            tokens, stop = self.wire.split_stop_by_spelling(
                completion.text, list(completion.tokens), completion.finish_reason
            )
            completions.append(completion.model_copy(update={"tokens": tuple(tokens), "stop_token": stop}))
        return Generation(completions=tuple(completions), usage=self.wire.usage(payload))

    def _parse_chat_generation(self, payload: Any, n: int) -> Generation:
        choices = self.wire.choices(payload, n)
        completions = []
        for i, choice in enumerate(choices):
            message = self.wire.get(choice, "message", f"choices[{i}].message")
            if isinstance(message, dict) and (message.get("reasoning_content") or message.get("tool_calls")):
                raise self.wire.fail(
                    f"choices[{i}].message", f"reasoning or tool calls beside the content ({PARSER_HINT})"
                )
            completion = self.wire.chat_completion(choice, i)
            tokens, stop = self.wire.split_stop_by_spelling(
                completion.text, list(completion.tokens), completion.finish_reason
            )
            completion = completion.model_copy(update={"tokens": tuple(tokens), "stop_token": stop})
            completions.append(self.wire.check_spelling(completion, f"choices[{i}].logprobs.content", PARSER_HINT))
        return Generation(completions=tuple(completions), usage=self.wire.usage(payload))

    # -- tokenizer routes beside /v1 ------------------------------------------------------

    def tokenize_path(self, path: str) -> str:
        return self.root_url + path

    def parse_detokenized(self, payload: Any) -> str:
        text = self.wire.get(payload, "text", "text")
        if not isinstance(text, str):
            raise self.wire.fail("text", "expected text")
        return text

    # -- scoring through the native /generate ----------------------------------------------

    def score_path(self) -> str:
        return self.root_url + "/generate"

    def score_body(self, prompt_ids: list[int]) -> dict[str, Any]:
        return {
            "input_ids": prompt_ids,
            "sampling_params": {"max_new_tokens": 0, "temperature": 0.0},
            "return_logprob": True,
            "logprob_start_len": 0,
            "return_text_in_logprobs": True,
        }

    def merge_score_bodies(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        if len(bodies) == 1:
            return bodies[0]
        return {**bodies[0], "input_ids": [b["input_ids"] for b in bodies]}

    def split_scored(self, payload: Any, k: int) -> list[Any]:
        if isinstance(payload, list) and len(payload) == k:
            return payload
        return [payload] * k  # each part then fails validation with a precise message

    def parse_scored(self, payload: Any, prompt_ids: list[int], n_scored: int) -> list[TokenLogprob]:
        field = "meta_info.input_token_logprobs"
        meta = self.wire.get(payload, "meta_info", "meta_info")
        entries = self.wire.logprobs_of(meta, "input_token_logprobs", field)
        n_prompt = len(prompt_ids)
        if not isinstance(entries, list) or len(entries) != n_prompt:
            got = len(entries) if isinstance(entries, list) else type(entries).__name__
            raise self.wire.fail(field, f"expected {n_prompt} entries (logprob_start_len 0), got {got}")
        if not 0 < n_scored < n_prompt:
            raise ValueError(f"cannot score {n_scored} of {n_prompt} prompt tokens (the first is never scored)")
        ids, values, texts = [], [], []
        for j, entry in enumerate(entries):
            if not isinstance(entry, list | tuple) or len(entry) < 2:
                raise self.wire.fail(f"{field}[{j}]", f"expected [logprob, token_id, text], got {entry!r}")
            ids.append(entry[1])
            values.append(entry[0])
            texts.append(entry[2] if len(entry) > 2 else None)
        if ids != list(prompt_ids):
            raise self.wire.fail(field, "token ids differ from the ids sent")
        return self.wire.token_logprobs(prompt_ids, texts, values, field, start=n_prompt - n_scored)


ADAPTER = SGLangProvider
