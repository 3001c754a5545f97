"""The fixed set of exchanges that `blackbox-audit fixtures record` captures from a real
server, and that the replay tests run again offline against the recording."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from providers.openai_compatible import OpenAICompatibleProvider
from providers.probe import probe
from providers.records import ChatMessage, GenerateRequest, ScoreRequest

SYSTEM = ChatMessage(role="system", content="You are a helpful assistant.")
USER = ChatMessage(role="user", content="Tell me anything.")
RAW_PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time")
SCORE_CASES = (
    ScoreRequest(context="The quick brown fox", continuation=" jumps over the lazy dog."),
    ScoreRequest(context="In 1969, Apollo 11", continuation=" landed on the Moon. Café, naïve, 東京 — 🙂!"),
    ScoreRequest(context="import numpy as np\n", continuation="x = np.zeros((3, 3))\nprint(x.sum())"),
    ScoreRequest(
        context=(SYSTEM, USER, ChatMessage(role="assistant", content="The")), continuation=" weather is lovely."
    ),
)

Scenario = Callable[[OpenAICompatibleProvider], Awaitable[Any]]


async def generate_raw_greedy(p: OpenAICompatibleProvider) -> Any:
    return await p.generate_many([GenerateRequest(prompt=x, max_tokens=16) for x in RAW_PROMPTS])


async def generate_raw_sampled(p: OpenAICompatibleProvider) -> Any:
    return await p.generate(GenerateRequest(prompt=RAW_PROMPTS[2], max_tokens=12, temperature=0.8, seed=7, n=2))


async def generate_chat(p: OpenAICompatibleProvider) -> Any:
    return await p.generate(GenerateRequest(prompt=(SYSTEM, USER), max_tokens=16))


async def generate_chat_prefill(p: OpenAICompatibleProvider) -> Any:
    prompt = (SYSTEM, USER, ChatMessage(role="assistant", content="The best"))
    return await p.generate(GenerateRequest(prompt=prompt, max_tokens=16))


async def score_echo(p: OpenAICompatibleProvider) -> Any:
    p.score_via = "echo"
    return await p.score_many(SCORE_CASES)


async def score_prompt_logprobs(p: OpenAICompatibleProvider) -> Any:
    p.score_via = "prompt_logprobs"
    try:
        return await p.score_many(SCORE_CASES)
    finally:
        p.score_via = "echo" if p.capabilities.echo_scoring else "prompt_logprobs"


async def run_probe(p: OpenAICompatibleProvider) -> Any:
    return await probe(p)


SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    "vllm": (
        generate_raw_greedy,
        generate_raw_sampled,
        generate_chat,
        generate_chat_prefill,
        score_echo,
        score_prompt_logprobs,
        run_probe,
    ),
    "openai": (generate_chat,),
    "generic": (generate_raw_greedy, generate_chat),
}


async def run_scenarios(provider: OpenAICompatibleProvider) -> int:
    scenarios = SCENARIOS[provider.dialect]
    for scenario in scenarios:
        await scenario(provider)
    return len(scenarios)
