"""Stage 2, target generation: prompt framing, the tokens that spell the text, batching."""

from __future__ import annotations

import json

import httpx
import pytest

from blackbox_audit.framing import Framer
from blackbox_audit.generation import generate_completions
from blackbox_audit.prefills import prefill_id
from blackbox_audit.records import Prefill, TargetCompletion
from providers.records import ChatMessage, TokenLogprob
from providers.registry import connect
from providers.wire import Wire

pytestmark = pytest.mark.anyio

BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there: only the mock transport answers


# -- framing -----------------------------------------------------------------------


def test_raw_framing_is_the_prefill_alone():
    assert Framer("raw", "sys", "user").prompt("The cat") == "The cat"


def test_chat_framing_opens_the_assistant_turn_with_the_prefill():
    assert Framer("chat", "Be brief.", "Tell me anything.").prompt("The cat") == (
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Tell me anything."),
        ChatMessage(role="assistant", content="The cat"),
    )


def test_chat_framing_omits_an_empty_system_prompt():
    assert Framer("chat", "", "Go.").prompt("The cat") == (
        ChatMessage(role="user", content="Go."),
        ChatMessage(role="assistant", content="The cat"),
    )


# -- the stop token, set apart by the provider -----------------------------------------

wire = Wire("vllm test")


def choice(text: str, tokens: list[str], finish_reason: str | None, stop_reason=None) -> dict:
    return {
        "index": 0,
        "text": text,
        "logprobs": {"tokens": tokens, "token_logprobs": [-1.0 - i for i in range(len(tokens))]},
        "token_ids": list(range(1, len(tokens) + 1)),
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }


def texts(tokens) -> list[str]:
    return [t.text for t in tokens]


@pytest.mark.parametrize("eos_text", ["", "<|im_end|>", "\ufffd"])
def test_vllm_end_of_sequence_token_is_set_apart(eos_text):
    parsed = wire.completion(choice("Hi there", ["Hi", " there", eos_text], "stop"), 0, stop_token_included=True)
    assert texts(parsed.tokens) == ["Hi", " there"]
    assert parsed.stop_token is not None and parsed.stop_token.logprob == -3.0


def test_a_stop_token_id_is_set_apart_too():
    parsed = wire.completion(choice("Hi", ["Hi", "<|endoftext|>"], "stop", stop_reason=0), 0, stop_token_included=True)
    assert texts(parsed.tokens) == ["Hi"]


def test_byte_fallback_tokens_do_not_hide_the_stop_token():
    """Tokens shown as U+FFFD do not spell the text, yet the stop token is still found."""
    parsed = wire.completion(choice("🙂", ["\ufffd", "\ufffd", ""], "stop"), 0, stop_token_included=True)
    assert len(parsed.tokens) == 2 and parsed.stop_token is not None


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason", "included"),
    [("length", None, True), ("stop", "###", True), ("stop", None, False)],
    ids=["length limit", "stop string", "endpoint without stop token"],
)
def test_every_token_is_kept_without_a_stop_token(finish_reason, stop_reason, included):
    parsed = wire.completion(
        choice("Hi there", ["Hi", " there"], finish_reason, stop_reason), 0, stop_token_included=included
    )
    assert texts(parsed.tokens) == ["Hi", " there"] and parsed.stop_token is None


# -- generate_completions against a fake vLLM --------------------------------------------


def fake_choice(prompt: str, index: int) -> dict:
    """A deterministic completion of `prompt`: even-length prompts stop with an EOS token, odd ones hit the length limit."""
    word = f" <{prompt}>"
    if len(prompt) % 2 == 0:
        tokens, logprobs, ids, finish = [" ok", word, "<|im_end|>"], [-0.5, -1.5, -0.01], [11, 12, 2], "stop"
    else:
        tokens, logprobs, ids, finish = [" ok", word], [-0.25, -2.0], [11, 13], "length"
    return {
        "index": index,
        "text": " ok" + word,
        "logprobs": {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": None, "text_offset": None},
        "token_ids": ids,
        "finish_reason": finish,
    }


class FakeVLLM:
    """/v1/completions like vLLM: a prompt string or a list of them; anything else fails the test."""

    def __init__(self):
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/v1/completions":
            pytest.fail(f"unexpected request {request.method} {request.url}")
        body = json.loads(request.content)
        self.bodies.append(body)
        prompts = [body["prompt"]] if isinstance(body["prompt"], str) else body["prompt"]
        assert all(isinstance(p, str) for p in prompts)
        choices = [fake_choice(p, i) for i, p in enumerate(prompts)]
        # vLLM answers prompt-major but nothing promises the order: the index is the truth
        return httpx.Response(
            200,
            json={
                "id": "cmpl-test",
                "object": "text_completion",
                "model": body["model"],
                "choices": choices[::-1],
                "usage": {"prompt_tokens": 3 * len(prompts), "completion_tokens": 2 * len(prompts)},
            },
        )

    def prompts_per_request(self) -> list[int]:
        return sorted(1 if isinstance(b["prompt"], str) else len(b["prompt"]) for b in self.bodies)


def make_prefills(n: int) -> list[Prefill]:
    texts_ = [f"prefill {i}" + "x" * (i % 2) for i in range(n)]  # even and odd lengths alternate
    return [
        Prefill(prefill_id=prefill_id(t), doc_id=f"doc:{i}", source="test", text=t, n_tokens=3)
        for i, t in enumerate(texts_)
    ]


async def run_generation(prefills, server, *, batch_size=4, workers=2, framing="raw"):
    target = await connect(BASE_URL, "tiny-target", dialect="vllm", transport=httpx.MockTransport(server))
    try:
        framer = Framer(framing, "You are a helpful assistant.", "Tell me anything.")
        return await generate_completions(
            target,
            [framer.frame(p) for p in prefills],
            max_new_tokens=7,
            temperature=0.0,
            seed=123,
            batch_size=batch_size,
            workers=workers,
        )
    finally:
        await target.aclose()


@pytest.mark.parametrize(
    ("n", "batch_size", "expected"),
    [
        (10, 4, [2, 4, 4]),
        (9, 4, [1, 4, 4]),  # a lone prompt goes as a plain string
        (3, 1, [1, 1, 1]),
        (5, 16, [5]),
    ],
)
async def test_prefills_are_batched(n, batch_size, expected):
    server = FakeVLLM()
    results = await run_generation(make_prefills(n), server, batch_size=batch_size)
    assert len(server.bodies) == len(expected)
    assert server.prompts_per_request() == expected
    assert len(results) == n


async def test_ten_prefills_in_batches_of_four_take_three_requests():
    server = FakeVLLM()
    await run_generation(make_prefills(10), server, batch_size=4, workers=3)
    assert len(server.bodies) == 3


async def test_order_is_preserved_and_fields_filled():
    prefills = make_prefills(10)
    server = FakeVLLM()
    results = await run_generation(prefills, server, batch_size=4, workers=3)
    assert all(isinstance(r, TargetCompletion) for r in results)
    assert [r.prefill for r in results] == prefills
    for r in results:
        p = r.prefill.text
        assert r.framing == "raw"
        assert r.completion == f" ok <{p}>"
        assert "".join(t.text for t in r.tokens) == r.completion
        if len(p) % 2 == 0:
            assert r.finish_reason == "stop"
            assert r.tokens == (  # the EOS token is left out
                TokenLogprob(text=" ok", logprob=-0.5, token_id=11),
                TokenLogprob(text=f" <{p}>", logprob=-1.5, token_id=12),
            )
        else:
            assert r.finish_reason == "length"
            assert r.tokens == (
                TokenLogprob(text=" ok", logprob=-0.25, token_id=11),
                TokenLogprob(text=f" <{p}>", logprob=-2.0, token_id=13),
            )


async def test_request_carries_the_generation_settings():
    server = FakeVLLM()
    await run_generation(make_prefills(2), server, batch_size=4)
    [body] = server.bodies
    assert body["model"] == "tiny-target"
    assert body["prompt"] == ["prefill 0", "prefill 1x"]
    assert body["max_tokens"] == 7
    assert body["temperature"] == 0.0
    assert body["seed"] == 123
    assert body["logprobs"] == 0
    assert body["return_token_ids"] is True


async def test_no_prefills_no_request():
    server = FakeVLLM()
    assert await run_generation([], server) == []
    assert server.bodies == []


async def test_chat_framing_sends_one_prefilled_chat_request_per_prefill():
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/chat/completions":
            pytest.fail(f"unexpected request {request.method} {request.url}")
        body = json.loads(request.content)
        bodies.append(body)
        prefill = body["messages"][-1]["content"]
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f" after {prefill}"},
                        "logprobs": {
                            "content": [
                                {"token": " after", "logprob": -1.0},
                                {"token": f" {prefill}", "logprob": -0.5},
                                {"token": "<|im_end|>", "logprob": -0.1},
                            ]
                        },
                        "finish_reason": "stop",
                    }
                ]
            },
        )

    prefills = make_prefills(3)
    results = await run_generation(prefills, handler, batch_size=4, framing="chat")
    assert len(bodies) == 3
    assert sorted(b["messages"][-1]["content"] for b in bodies) == sorted(p.text for p in prefills)
    for body in bodies:
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
        assert body["continue_final_message"] is True
        assert body["add_generation_prompt"] is False
    assert [r.completion for r in results] == [f" after {p.text}" for p in prefills]
    assert all(r.framing == "chat" for r in results)
    assert all(texts(r.tokens) == [" after", f" {r.prefill.text}"] for r in results)
