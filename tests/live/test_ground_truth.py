"""Scores from the real local vLLM equal a transformers fp32 forward pass within 1e-4 nats."""

from __future__ import annotations

import pytest

from blackbox_audit import local_vllm
from providers.probe import probe
from providers.recording import SCORE_CASES
from providers.records import ChatMessage, GenerateRequest, ScoreRequest
from providers.registry import connect
from tests.live.conftest import transformers_logprobs

pytestmark = pytest.mark.anyio

TOLERANCE_NATS = 1e-4
CASES = (
    *SCORE_CASES,
    ScoreRequest(context="Pa", continuation="ris is the capital of France, and Berlin is the capital of Germany."),
    ScoreRequest(
        context=(ChatMessage(role="system", content="You are a helpful assistant."), ChatMessage(role="user", content="Tell me anything.")),
        continuation="Sure! Did you know that octopuses have three hearts?",
    ),
)


async def test_score_matches_transformers(live_model):
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        scored = await provider.score_many(CASES)
        sequences, scored_counts = [], []
        for request, result in zip(CASES, scored, strict=True):
            assert result.alignment == "exact" and result.covered_text == request.continuation
            assert await provider.detokenize([t.token_id for t in result.tokens]) == request.continuation
            context_ids = await provider.tokenize(request.context)
            sequences.append(context_ids + [t.token_id for t in result.tokens])
            scored_counts.append(len(result.tokens))
    finally:
        await provider.aclose()
    truth = transformers_logprobs(live_model.key, sequences)
    worst = 0.0
    for result, expected, n in zip(scored, truth, scored_counts, strict=True):
        for token, value in zip(result.tokens, expected[-n:], strict=True):
            worst = max(worst, abs(token.logprob - value))
    print(f"{live_model.key}: max |vLLM - transformers| = {worst:.2e} nats over {sum(scored_counts)} tokens")
    assert worst <= TOLERANCE_NATS


async def test_echo_and_prompt_logprobs_agree(live_model):
    echo = await connect(live_model.base_url, live_model.served_name, score_via="echo")
    prompt = await connect(live_model.base_url, live_model.served_name, score_via="prompt_logprobs")
    try:
        a, b = await echo.score_many(CASES), await prompt.score_many(CASES)
    finally:
        await echo.aclose()
        await prompt.aclose()
    worst = max(
        abs(x.logprob - y.logprob) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra.tokens, rb.tokens, strict=True)
    )
    assert worst <= TOLERANCE_NATS


async def test_generation_logprobs_match_scoring(live_model):
    """The target's own generation logprobs equal scoring its tokens afterwards (same model)."""
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        prompt = "The history of the printing press"
        completion = (await provider.generate(GenerateRequest(prompt=prompt, max_tokens=24))).completions[0]
        ids = await provider.tokenize(prompt) + [t.token_id for t in completion.tokens]
    finally:
        await provider.aclose()
    truth = transformers_logprobs(live_model.key, [ids])[0][-len(completion.tokens) :]
    assert max(abs(t.logprob - v) for t, v in zip(completion.tokens, truth, strict=True)) <= TOLERANCE_NATS


async def test_probe_passes_both_roles(live_model):
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        report = await probe(provider)
    finally:
        await provider.aclose()
    assert [c.name for c in report.checks if not c.ok] == []
    assert report.can_target and report.can_reference


async def test_served_tokenizer_is_adopted_and_scores_identically(live_model):
    """"auto" finds the served folder's tokenizer.json, which matches /tokenize, and then scores
    with the very same ids and logprobs while sending no tokenizer request."""
    server = await connect(live_model.base_url, live_model.served_name, tokenizer="server")
    local = await connect(live_model.base_url, live_model.served_name, tokenizer="auto")
    try:
        assert local.local_tokenizer is not None, local.tokenizer_source
        assert local.local_tokenizer.path.parent == local_vllm.model_dir(live_model.key)
        before = dict(local.http.stats.by_path)
        a, b = await server.score_many(CASES), await local.score_many(CASES)
        sent = {path: n - before.get(path, 0) for path, n in local.http.stats.by_path.items()}
    finally:
        await server.aclose()
        await local.aclose()
    chat_contexts = sum(not isinstance(case.context, str) for case in CASES)
    assert sum(n for path, n in sent.items() if "tokenize" in path) == chat_contexts  # only the chat templates
    for x, y in zip(a, b, strict=True):
        assert [t.token_id for t in x.tokens] == [t.token_id for t in y.tokens]
        assert [t.logprob for t in x.tokens] == [t.logprob for t in y.tokens]
