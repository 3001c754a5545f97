"""Async adapters for OpenAI-compatible endpoints: generate with logprobs, score given text."""

from providers.errors import (
    AlignmentError,
    APIStatusError,
    CapabilityError,
    ProviderError,
    ResponseShapeError,
)
from providers.http import RetryPolicy
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import (
    Capabilities,
    ChatMessage,
    Completion,
    GenerateRequest,
    Generation,
    Prompt,
    ScoredContinuation,
    ScoreRequest,
    TokenLogprob,
)
from providers.registry import connect

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
