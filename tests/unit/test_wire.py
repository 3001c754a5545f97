"""Wire parsers, table-driven over recorded answers and malformed variants derived from them."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from providers.errors import ResponseShapeError
from providers.wire import Wire

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
wire = Wire("vllm test")


def recorded(predicate):
    """The first recorded vLLM exchange whose request body satisfies `predicate`."""
    for file in sorted(FIXTURES.glob("vllm-*/*.json")):
        data = json.loads(file.read_text())
        body = data["request"]["body"] or {}
        if predicate(data["request"]["path"], body):
            return body, data["response"]["body"]
    raise LookupError("no such recorded exchange; rerun blackbox-audit fixtures record")


def echo_exchange():
    return recorded(
        lambda path, b: (
            path.endswith("/completions")
            and b.get("echo")
            and isinstance(b["prompt"], list)
            and isinstance(b["prompt"][0], int)
        )
    )


def prompt_logprobs_exchange():
    return recorded(lambda path, b: "prompt_logprobs" in b and isinstance(b["prompt"][0], int))


def generation_exchange():
    return recorded(
        lambda path, b: (
            path.endswith("/v1/completions") and not b.get("echo") and "prompt_logprobs" not in b and b.get("n") == 1
        )
    )


def chat_exchange():
    return recorded(lambda path, b: path.endswith("/chat/completions"))


def parse_echo(body, payload):
    choice = wire.choices(payload, 1)[0]
    return wire.echo_logprobs(choice, 0, body["prompt"], len(body["prompt"]) - 1)


def parse_prompt_logprobs(body, payload):
    choice = wire.choices(payload, 1)[0]
    return wire.prompt_logprobs(choice["prompt_logprobs"], "prompt_logprobs", body["prompt"], len(body["prompt"]) - 1)


def parse_generation(body, payload):
    return wire.completion(wire.choices(payload, body["n"])[0], 0)


def parse_chat(body, payload):
    return wire.chat_completion(wire.choices(payload, body["n"])[0], 0)


def set_path(payload, path, value):
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


DELETE = object()
LP = ("choices", 0, "logprobs")
CASES = [
    # (name, exchange, parser, mutation path, new value or a function of the old payload, error field)
    ("echo null mid-sequence", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), None, "token_logprobs[2]"),
    ("echo sentinel -9999", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), -9999.0, "token_logprobs[2]"),
    ("echo NaN", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), math.nan, "token_logprobs[2]"),
    ("echo +inf", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), math.inf, "token_logprobs[2]"),
    ("echo positive logprob", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), 0.5, "token_logprobs[2]"),
    ("echo string logprob", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), "-1.0", "token_logprobs[2]"),
    ("echo missing logprobs", echo_exchange, parse_echo, LP, DELETE, "logprobs"),
    ("echo missing token_logprobs", echo_exchange, parse_echo, (*LP, "token_logprobs"), DELETE, "token_logprobs"),
    ("echo wrong length", echo_exchange, parse_echo, (*LP, "token_logprobs"), lambda old: old[:-1], "logprobs"),
    (
        "echo other token ids",
        echo_exchange,
        parse_echo,
        ("choices", 0, "prompt_token_ids"),
        lambda old: [*old[:-1], old[-1] + 1],
        "prompt_token_ids",
    ),
    ("echo token text not a string", echo_exchange, parse_echo, (*LP, "tokens", 2), 1234, "logprobs"),
    ("echo integer logprob", echo_exchange, parse_echo, (*LP, "token_logprobs", 2), 1, "token_logprobs[2]"),
    ("echo no choices", echo_exchange, parse_echo, ("choices",), [], "choices"),
    ("echo missing choices", echo_exchange, parse_echo, ("choices",), DELETE, "choices"),
    (
        "prompt_logprobs wrong length",
        prompt_logprobs_exchange,
        parse_prompt_logprobs,
        ("choices", 0, "prompt_logprobs"),
        lambda old: old[:-1],
        "prompt_logprobs",
    ),
    (
        "prompt_logprobs null mid-sequence",
        prompt_logprobs_exchange,
        parse_prompt_logprobs,
        ("choices", 0, "prompt_logprobs", 2),
        None,
        "prompt_logprobs[2]",
    ),
    (
        "prompt_logprobs other token",
        prompt_logprobs_exchange,
        parse_prompt_logprobs,
        ("choices", 0, "prompt_logprobs", 2),
        {"1": {"logprob": -1.0}},
        "prompt_logprobs[2]",
    ),
    (
        "generation null logprob",
        generation_exchange,
        parse_generation,
        (*LP, "token_logprobs", 1),
        None,
        "token_logprobs[1]",
    ),
    ("generation token text not a string", generation_exchange, parse_generation, (*LP, "tokens", 1), None, "logprobs"),
    (
        "generation length mismatch",
        generation_exchange,
        parse_generation,
        (*LP, "tokens"),
        lambda old: old[:-1],
        "logprobs",
    ),
    (
        "generation token ids mismatch",
        generation_exchange,
        parse_generation,
        ("choices", 0, "token_ids"),
        lambda old: old[:-1],
        "token_ids",
    ),
    (
        "chat missing logprob",
        chat_exchange,
        parse_chat,
        ("choices", 0, "logprobs", "content", 1, "logprob"),
        DELETE,
        "content[1].logprob",
    ),
    (
        "chat NaN logprob",
        chat_exchange,
        parse_chat,
        ("choices", 0, "logprobs", "content", 1, "logprob"),
        math.nan,
        "content[1].logprob",
    ),
    ("chat missing logprobs", chat_exchange, parse_chat, ("choices", 0, "logprobs"), DELETE, "logprobs"),
    ("chat missing message", chat_exchange, parse_chat, ("choices", 0, "message"), DELETE, "message"),
]


@pytest.mark.parametrize(
    ("exchange", "parser"),
    [
        (echo_exchange, parse_echo),
        (prompt_logprobs_exchange, parse_prompt_logprobs),
        (generation_exchange, parse_generation),
        (chat_exchange, parse_chat),
    ],
)
def test_recorded_answers_parse(exchange, parser):
    body, payload = exchange()
    assert parser(body, payload)


@pytest.mark.parametrize(("name", "exchange", "parser", "path", "value", "field"), CASES, ids=[c[0] for c in CASES])
def test_malformed_variant_raises_naming_the_field(name, exchange, parser, path, value, field):
    body, payload = exchange()
    broken = copy.deepcopy(payload)
    target = broken
    for key in path[:-1]:
        target = target[key]
    set_path(broken, path, value(target[path[-1]]) if callable(value) else value)
    with pytest.raises(ResponseShapeError) as info:
        parser(body, broken)
    assert field in str(info.value)
    assert "vllm test" in str(info.value)


def test_choices_are_sorted_by_index():
    payload = {"choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}]}
    assert [c["text"] for c in wire.choices(payload, 2)] == ["a", "b"]


def test_duplicate_choice_indices_are_refused():
    with pytest.raises(ResponseShapeError, match="indices"):
        wire.choices({"choices": [{"index": 0}, {"index": 0}]}, 2)
