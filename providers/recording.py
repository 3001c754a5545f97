"""The fixed set of exchanges that `blackbox-audit fixtures record` captures from a real
server, and that the replay tests run again offline against the recording."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from providers.dialects import DIALECTS
from providers.errors import ResponseShapeError
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

RAW_SCORE_CASES = tuple(case for case in SCORE_CASES if isinstance(case.context, str))
"""What text-only scorers (no chat template as token ids) are asked."""

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


async def score_raw(p: OpenAICompatibleProvider) -> Any:
    """The raw-text cases, by whichever scoring the dialect declares (ids, or echoed texts)."""
    return await p.score_many(RAW_SCORE_CASES)


async def echo_forced(p: OpenAICompatibleProvider) -> Any:
    """What an echo scoring request gets from a server that declares no echo (llama.cpp ignores
    it): the answer must be refused, never scored. Returns the refusal; last in a scenario list,
    since it switches echo on."""
    p.capabilities = p.capabilities.model_copy(update={"echo_scoring": True})
    p.score_via = "echo"
    try:
        scored = await p.score(RAW_SCORE_CASES[0])
    except ResponseShapeError as exc:
        return exc
    raise AssertionError(
        f"{p.dialect}: an echo that covers {len(scored.tokens)} tokens was accepted from a server that ignores echo"
    )


async def tokenize_round_trip(p: OpenAICompatibleProvider) -> Any:
    ids = await p.tokenize(RAW_PROMPTS[0], add_special_tokens=False)
    return ids, await p.detokenize(ids)


SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    name: tuple(globals()[scenario] for scenario in dialect.scenarios) for name, dialect in DIALECTS.items()
}
"""What `fixtures record` captures per dialect (the names are in `providers.dialects`)."""


async def run_scenarios(provider: OpenAICompatibleProvider) -> int:
    scenarios = SCENARIOS[provider.dialect]
    for scenario in scenarios:
        await scenario(provider)
    return len(scenarios)
