"""Async adapters for OpenAI-compatible endpoints: generate with logprobs, score given text.

Names are imported on first use (PEP 562), so `import providers.dialects` (the CLI's choices)
loads neither httpx nor any adapter.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlignmentError": "providers.errors",
    "APIStatusError": "providers.errors",
    "CapabilityError": "providers.errors",
    "ProviderError": "providers.errors",
    "ResponseShapeError": "providers.errors",
    "RetryPolicy": "providers.http",
    "OpenAICompatibleProvider": "providers.openai_compatible",
    "Capabilities": "providers.records",
    "ChatMessage": "providers.records",
    "Completion": "providers.records",
    "GenerateRequest": "providers.records",
    "Generation": "providers.records",
    "Prompt": "providers.records",
    "ScoredContinuation": "providers.records",
    "ScoreRequest": "providers.records",
    "TokenLogprob": "providers.records",
    "connect": "providers.registry",
}

__all__ = [
    "AlignmentError",
    "APIStatusError",
    "Capabilities",
    "CapabilityError",
    "ChatMessage",
    "Completion",
    "GenerateRequest",
    "Generation",
    "OpenAICompatibleProvider",
    "Prompt",
    "ProviderError",
    "ResponseShapeError",
    "RetryPolicy",
    "ScoredContinuation",
    "ScoreRequest",
    "TokenLogprob",
    "connect",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'providers' has no attribute {name!r}")
