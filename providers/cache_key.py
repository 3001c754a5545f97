"""Cache keys from an allowlist: sha256 of canonical JSON over what changes the answer.

A field that is in neither list raises, so adding a request field can never silently
serve one request's answer for another. The API key is never part of a key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from providers.fixtures import canonical_json

CACHE_SCHEMA_VERSION = 1

ANSWER_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "n",
        "stop",
        "logprobs",
        "top_logprobs",
        "echo",
        "prompt_logprobs",
        "add_special_tokens",
        "add_generation_prompt",
        "continue_final_message",
        "return_token_ids",
        "return_tokens_as_token_ids",
        "skip_special_tokens",
        "tokens",
        "chat_template",
        "include_stop_str_in_output",
        # Fireworks: raw_output changes the answer's shape; echo_last which prompt tokens come back
        "raw_output",
        "echo_last",
        # OpenRouter: provider routing decides which upstream (weights, quantization) answers
        "provider",
        # SGLang's native /generate
        "input_ids",
        "text",
        "sampling_params",
        "return_logprob",
        "logprob_start_len",
        "top_logprobs_num",
        "return_text_in_logprobs",
        # llama.cpp's /tokenize
        "content",
        "add_special",
        "with_pieces",
    }
)
IGNORED_FIELDS = frozenset({"stream", "user"})


def cache_key(base_url: str, method: str, path: str, body: dict[str, Any] | None) -> tuple[str, str]:
    """(sha256 hex key, the canonical JSON it hashes) for one request."""
    body = body or {}
    unknown = set(body) - ANSWER_FIELDS - IGNORED_FIELDS
    if unknown:
        raise ValueError(f"request fields {sorted(unknown)} are not classified for the cache key")
    material = canonical_json(
        {
            "schema": CACHE_SCHEMA_VERSION,
            "base_url": base_url.rstrip("/"),
            "method": method.upper(),
            "path": path,
            "body": {k: v for k, v in body.items() if k in ANSWER_FIELDS},
        }
    )
    return hashlib.sha256(material.encode()).hexdigest(), material
