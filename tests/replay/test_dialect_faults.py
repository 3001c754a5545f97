"""Faults in every dialect's own shape, over real HTTP (`tests.replay.faultserver` replaying each
dialect's fixtures): malformed shapes, a silently ignored echo (llama.cpp style), null logprobs
(OpenRouter style), Fireworks' two logprob fields, SGLang's parsers, bad numbers in each place a
parser reads one. Each fault ends in exactly one clear error naming the field and the cause, or,
for retryable faults, in the same result as the clean run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from providers import errors
from providers.http import RetryPolicy
from providers.recording import generate_chat, generate_raw_greedy, score_echo, score_raw
from providers.registry import connect
from tests.replay.faultserver import (
    MISSING,
    FaultServer,
    Rule,
    answered_by,
    delete_path,
    error_status,
    ignore_echo,
    mutated,
    null_logprobs,
    rate_limited,
    set_content_logprob,
    set_flat_logprob,
    set_input_logprob,
    set_prompt_part_logprob,
    set_raw_logprob,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.01, max_retry_after_s=30.0, jitter_s=0.0)

Scenario = Callable[[Any], Awaitable[Any]]


def meta(dialect: str) -> dict:
    directory = FIXTURES / f"{dialect}-smollm2"
    return json.loads(next(directory.glob("*.json")).read_text())["meta"]


def is_echo(body: Any) -> bool:
    return isinstance(body, dict) and bool(body.get("echo"))


def is_generation(body: Any) -> bool:
    return isinstance(body, dict) and not body.get("echo")


@dataclass(frozen=True)
class DialectFault:
    id: str
    dialect: str
    scenario: Scenario
    route: str
    """The route under the dialect's base URL ("/completions"), or an absolute path ("/generate")."""
    fault: Callable[[], Any]
    error: type[Exception] | None
    needles: tuple[str, ...] = ()
    match: Callable[[Any], bool] | None = None


def bad(name: str, transform: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: mutated(name, transform)


def _drop_last_input_entry(body: Any) -> Any:
    answer = body[0] if isinstance(body, list) else body
    answer["meta_info"]["input_token_logprobs"].pop()
    return body


def _reasoning_beside_content(body: Any) -> Any:
    body["choices"][0]["message"]["reasoning_content"] = "Let me think."
    return body


def _drop_entry_id(body: Any) -> Any:
    content = body["choices"][0]["logprobs"]["content"]
    del content[len(content) // 2]["id"]
    return body


CASES = [
    # -- Together: flat logprobs, top-level prompt[] --
    DialectFault(
        "together-echo-ignored",
        "together",
        score_raw,
        "/completions",
        bad("echo ignored", ignore_echo()),
        errors.ResponseShapeError,
        ("prompt", "echo ignored"),
        is_echo,
    ),
    DialectFault(
        "together-prompt-logprob-null",
        "together",
        score_raw,
        "/completions",
        bad("prompt logprob null", set_prompt_part_logprob(None)),
        errors.ResponseShapeError,
        ("prompt[0].logprobs.token_logprobs[", "expected a number, got None"),
        is_echo,
    ),
    DialectFault(
        "together-prompt-logprob-positive",
        "together",
        score_raw,
        "/completions",
        bad("prompt logprob +0.5", set_prompt_part_logprob(0.5)),
        errors.ResponseShapeError,
        ("prompt[0].logprobs.token_logprobs[", "not a valid logprob: 0.5"),
        is_echo,
    ),
    DialectFault(
        "together-prompt-tokens-missing",
        "together",
        score_raw,
        "/completions",
        bad("prompt tokens missing", delete_path("prompt", 0, "logprobs", "tokens")),
        errors.ResponseShapeError,
        ("prompt[0].logprobs.tokens", "missing"),
        is_echo,
    ),
    DialectFault(
        "together-generation-NaN",
        "together",
        generate_raw_greedy,
        "/completions",
        bad("generation NaN", set_flat_logprob(math.nan)),
        errors.ResponseShapeError,
        ("choices[0].logprobs.token_logprobs[", "nan"),
        is_generation,
    ),
    DialectFault(
        "together-chat-logprobs-null",
        "together",
        generate_chat,
        "/chat/completions",
        bad("chat logprobs null", null_logprobs()),
        errors.ResponseShapeError,
        ("choices[0].logprobs", "null"),
    ),
    # -- Fireworks: raw_output with logprob and sampling_logprob --
    DialectFault(
        "fireworks-only-sampling-logprob",
        "fireworks",
        generate_raw_greedy,
        "/completions",
        bad("logprob deleted", set_raw_logprob(MISSING)),
        errors.ResponseShapeError,
        ("completion_logprobs.content[", "only sampling_logprob is there"),
        is_generation,
    ),
    DialectFault(
        "fireworks-raw-logprob-sentinel",
        "fireworks",
        generate_chat,
        "/chat/completions",
        bad("logprob -9999", set_raw_logprob(-9999.0)),
        errors.ResponseShapeError,
        ("raw_output.completion_logprobs.content[", "sentinel"),
    ),
    DialectFault(
        "fireworks-raw-output-missing",
        "fireworks",
        generate_raw_greedy,
        "/completions",
        bad("raw_output missing", delete_path("choices", 0, "raw_output")),
        errors.ResponseShapeError,
        ("choices[0].raw_output", "missing"),
        is_generation,
    ),
    DialectFault(
        "fireworks-echo-ignored",
        "fireworks",
        score_raw,
        "/completions",
        bad("echo ignored", ignore_echo()),
        errors.ResponseShapeError,
        ("ignored echo",),
        is_echo,
    ),
    # -- DeepInfra: OpenAI shapes, logprobs not promised --
    DialectFault(
        "deepinfra-null-logprobs",
        "deepinfra",
        generate_raw_greedy,
        "/completions",
        bad("logprobs null", null_logprobs()),
        errors.ResponseShapeError,
        ("choices[0].logprobs", "null", "DeepInfra does not promise"),
        is_generation,
    ),
    DialectFault(
        "deepinfra-echo-ignored",
        "deepinfra",
        score_raw,
        "/completions",
        bad("echo ignored", ignore_echo()),
        errors.ResponseShapeError,
        ("ignored echo",),
        is_echo,
    ),
    # -- OpenRouter: pass-through to a pinned upstream --
    DialectFault(
        "openrouter-null-logprobs",
        "openrouter",
        generate_chat,
        "/chat/completions",
        bad("logprobs null", null_logprobs()),
        errors.ResponseShapeError,
        ("null", "pin one that serves them"),
    ),
    DialectFault(
        "openrouter-null-logprobs-raw",
        "openrouter",
        generate_raw_greedy,
        "/completions",
        bad("logprobs null", null_logprobs()),
        errors.ResponseShapeError,
        ("null", "require_parameters is on"),
    ),
    DialectFault(
        "openrouter-unpinned-upstream",
        "openrouter",
        generate_chat,
        "/chat/completions",
        bad("answered by another upstream", answered_by("Together")),
        errors.ResponseShapeError,
        ("answered by 'Together'", "not by a pinned upstream (deepinfra)"),
    ),
    # -- SGLang: /generate input logprobs, parsers on chat --
    DialectFault(
        "sglang-input-logprob-NaN",
        "sglang",
        score_raw,
        "/generate",
        bad("input logprob NaN", set_input_logprob(math.nan)),
        errors.ResponseShapeError,
        ("meta_info.input_token_logprobs[", "nan"),
    ),
    DialectFault(
        "sglang-input-entry-missing",
        "sglang",
        score_raw,
        "/generate",
        bad("one input entry short", _drop_last_input_entry),
        errors.ResponseShapeError,
        ("input_token_logprobs", "expected"),
    ),
    DialectFault(
        "sglang-reasoning-parser",
        "sglang",
        generate_chat,
        "/chat/completions",
        bad("reasoning beside content", _reasoning_beside_content),
        errors.ResponseShapeError,
        ("reasoning or tool calls", "--reasoning-parser"),
    ),
    # -- llama.cpp: content entries with ids --
    DialectFault(
        "llamacpp-content-logprob-null",
        "llamacpp",
        generate_raw_greedy,
        "/completions",
        bad("content logprob null", set_content_logprob(None)),
        errors.ResponseShapeError,
        ("logprobs.content[", "expected a number, got None"),
    ),
    DialectFault(
        "llamacpp-entry-id-missing",
        "llamacpp",
        generate_chat,
        "/chat/completions",
        bad("entry id missing", _drop_entry_id),
        errors.ResponseShapeError,
        ("logprobs.content[", ".id: missing"),
    ),
    # -- vLLM's token-id echo, ignored llama.cpp style --
    DialectFault(
        "vllm-echo-ignored",
        "vllm",
        score_echo,
        "/completions",
        bad("echo ignored", ignore_echo()),
        errors.ResponseShapeError,
        ("echo covers 1 tokens", "ignored echo"),
        is_echo,
    ),
    # -- retryable: survived, same answer --
    *(
        DialectFault(f"{d}-429-retry-after", d, s, r, lambda: rate_limited(retry_after_ms="20"), None)
        for d, s, r in (
            ("together", score_raw, "/completions"),
            ("fireworks", generate_raw_greedy, "/completions"),
            ("deepinfra", generate_chat, "/chat/completions"),
            ("openrouter", generate_chat, "/chat/completions"),
            ("sglang", score_raw, "/generate"),
            ("llamacpp", generate_raw_greedy, "/completions"),
        )
    ),
    DialectFault(
        "sglang-503-on-tokenize",
        "sglang",
        score_raw,
        "/tokenize",
        lambda: error_status(503, "busy", "ServiceUnavailable"),
        None,
    ),
]


def fixture_dir(dialect: str) -> Path:
    return FIXTURES / f"{dialect}-smollm2"


def rule_path(case: DialectFault) -> str:
    base = meta(case.dialect)["base_url"]
    from urllib.parse import urlsplit

    base_path = urlsplit(base).path.rstrip("/")
    root = base_path.removesuffix("/v1")
    return (root + case.route) if case.route in ("/generate", "/tokenize", "/detokenize") else base_path + case.route


async def _run(server: FaultServer, case: DialectFault) -> Any:
    m = meta(case.dialect)
    provider = await connect(
        server.url_like(m["base_url"]),
        m["model"],
        dialect=m["dialect"],
        options=m.get("options"),
        retry=FAST,
        sleep=_no_sleep,
    )
    try:
        return await case.scenario(provider)
    finally:
        await provider.aclose()


async def _no_sleep(seconds: float) -> None:
    pass


def _comparable(result: Any) -> Any:
    if isinstance(result, list):
        return [_comparable(r) for r in result]
    return result.model_dump() if hasattr(result, "model_dump") else result


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dialect_fault_is_survived_or_reported(case: DialectFault):
    with FaultServer(fixture_dir(case.dialect)) as server:
        clean = anyio.run(_run, server, case)  # the clean run over real HTTP first
        assert not server.misses, server.misses
        server.clear()
        server.add(Rule(case.fault(), path=rule_path(case), match=case.match, nth=1))
        if case.error is None:
            again = anyio.run(_run, server, case)
            assert _comparable(again) == _comparable(clean)
        else:
            with pytest.raises(Exception) as caught:
                anyio.run(_run, server, case)
            assert type(caught.value) is case.error, f"{type(caught.value).__name__}: {caught.value}"
            for needle in case.needles:
                assert needle in str(caught.value), f"{needle!r} not in: {caught.value}"
        assert server.faults_injected == 1, f"the rule fired {server.faults_injected} times (path {rule_path(case)})"
        assert not server.misses, server.misses


def test_every_dialect_is_fault_tested():
    from providers.dialects import DIALECT_NAMES

    covered = {c.dialect for c in CASES}
    assert covered >= set(DIALECT_NAMES) - {"openai", "generic"}, (
        "openai/generic share vLLM's shapes, tested in test_faults.py"
    )
