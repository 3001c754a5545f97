"""vLLM's OpenAI server: echo and `prompt_logprobs` scoring, assistant prefill, /tokenize."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import Capabilities, GenerateRequest, ends_with_prefill

VLLM_CAPABILITIES = Capabilities(
    generate_raw=True,
    generate_chat=True,
    chat_prefill=True,
    echo_scoring=True,
    prompt_logprobs=True,
    tokenizer="server",
    chat_tokenize=True,
    token_id_prompts=True,
    batch_prompts=True,
    max_top_logprobs=20,
    echo_token_texts=True,
    generation_logprobs="raw",
)
"""`--max-logprobs` defaults to 20; sampled tokens' logprobs are raw by default (`--logprobs-mode`)."""


class VLLMProvider(OpenAICompatibleProvider):
    stop_token_in_logprobs: ClassVar[bool] = True

    @classmethod
    def declared_capabilities(cls, model: str) -> Capabilities:
        return VLLM_CAPABILITIES

    def generate_body(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        path, body = super().generate_body(request)
        body["return_token_ids"] = True
        if ends_with_prefill(request.prompt):
            body.update(add_generation_prompt=False, continue_final_message=True)
        return path, body

    def score_body(self, prompt_ids: list[int]) -> dict[str, Any]:
        return {**super().score_body(prompt_ids), "return_token_ids": True}

    def tokenize_path(self, path: str) -> str:
        return self.root_url + path

    async def served_folder(self) -> Path | None:
        """The folder the server loaded the model from (`root` in GET /models), when it exists on
        this machine: its tokenizer.json can then tokenize in process (`adopt_tokenizer`)."""

        def root_of(payload: Any) -> str | None:
            entries = payload.get("data") if isinstance(payload, dict) else None
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and entry.get("id") == self.model and isinstance(entry.get("root"), str):
                    return entry["root"]
            return None

        root = await self.http.request("GET", "/models", None, root_of)
        return Path(root) if root and Path(root).is_dir() else None


ADAPTER = VLLMProvider
