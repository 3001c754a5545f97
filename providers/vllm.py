"""vLLM's OpenAI server: echo and `prompt_logprobs` scoring, assistant prefill, /tokenize."""

from __future__ import annotations

from typing import Any, ClassVar

from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities, GenerateRequest, ends_with_prefill

VLLM_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=True,
    echo_scoring=True,
    prompt_logprobs=True,
    tokenize=True,
    chat_tokenize=True,
    token_id_prompts=True,
    batch_prompts=True,
    max_top_logprobs=20,
)


class VLLMProvider(OpenAICompatibleProvider):
    dialect: ClassVar[str] = "vllm"
    stop_token_in_logprobs: ClassVar[bool] = True

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        body["return_token_ids"] = True
        if ends_with_prefill(request.prompt):
            body.update(add_generation_prompt=False, continue_final_message=True)
        return path, body

    def score_body(self, prompt_ids: list[int]) -> dict[str, Any]:
        return {**super().score_body(prompt_ids), "return_token_ids": True}

    def tokenize_path(self, path: str) -> str:
        return self.base_url.removesuffix("/v1") + path
