"""Replay every recorded dialect through the real adapters: no network, CI's smoke test."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from providers import errors
from providers.agreement import compare_logprobs
from providers.dialects import DIALECT_NAMES
from providers.http import ReplayTransport
from providers.recording import (
    SCENARIOS,
    generate_chat,
    generate_chat_prefill,
    generate_raw_greedy,
    generate_raw_sampled,
    run_probe,
    score_echo,
    score_prompt_logprobs,
)
from providers.records import ChatMessage, GenerateRequest, ScoreRequest
from providers.registry import connect

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FIXTURE_DIRS = sorted(
    d for d in FIXTURES.iterdir() if d.is_dir() and not d.name.startswith(("audit-", "mcp-"))
)  # provider scenarios only


def meta_of(directory: Path) -> dict[str, str]:
    return json.loads(next(directory.glob("*.json")).read_text())["meta"]


async def replayed(directory: Path):
    meta = meta_of(directory)
    transport = ReplayTransport(directory)
    provider = await connect(
        meta["base_url"], meta["model"], dialect=meta["dialect"], transport=transport, options=meta.get("options")
    )
    return provider, transport


RECORDED = {"vllm", "openai", "generic"}
"""Dialects the local vLLM answers for real: their fixtures are recorded from it."""


def test_every_dialect_has_fixtures():
    assert {meta_of(d)["dialect"] for d in FIXTURE_DIRS} == set(DIALECT_NAMES)


@pytest.mark.parametrize("directory", FIXTURE_DIRS, ids=lambda d: d.name)
async def test_fixture_metadata_is_complete_and_has_no_secrets(directory):
    for file in directory.glob("*.json"):
        data = json.loads(file.read_text())
        meta = data["meta"]
        if meta["dialect"] in RECORDED:  # recorded from a real server, and saying so
            assert {"server", "version", "model", "recorded", "dialect"} <= set(meta)
            assert "source" not in meta
        else:  # built from the service's published reference, and never claiming a recording
            assert meta["source"] == "published API reference"
            assert meta["url"].startswith("https://") and {"model", "dialect", "built", "values"} <= set(meta)
            assert "recorded" not in meta
        text = file.read_text().lower()
        assert "authorization" not in text and "bearer" not in text


@pytest.mark.parametrize("directory", FIXTURE_DIRS, ids=lambda d: d.name)
async def test_scenarios_replay(directory):
    provider, transport = await replayed(directory)
    for scenario in SCENARIOS[provider.dialect]:
        await scenario(provider)
    assert transport.requests_served > 0


def vllm_dirs():
    return [d for d in FIXTURE_DIRS if meta_of(d)["dialect"] == "vllm"]


RECORDED_LOGIT_SCALE = 100.0
"""The largest |logit| of the recorded models' forward passes (Gemma 3 270M: 97.5, SmolLM2: 39.6;
python -m bench.kernel_spread): what the fp32 agreement rule scales with."""


@pytest.mark.parametrize("directory", vllm_dirs(), ids=lambda d: d.name)
async def test_vllm_generation_carries_ids_and_logprobs(directory):
    provider, _ = await replayed(directory)
    for generation in await generate_raw_greedy(provider):
        completion = generation.completions[0]
        assert completion.tokens and all(t.token_id is not None and t.logprob <= 0 for t in completion.tokens)
        assert "".join(t.text for t in completion.tokens) == completion.text
    sampled = await generate_raw_sampled(provider)
    assert len(sampled.completions) == 2
    for generation in (await generate_chat(provider), await generate_chat_prefill(provider)):
        completion = generation.completions[0]
        assert completion.tokens and all(t.token_id is not None for t in completion.tokens)


@pytest.mark.parametrize("directory", vllm_dirs(), ids=lambda d: d.name)
async def test_vllm_echo_and_prompt_logprobs_agree(directory):
    provider, _ = await replayed(directory)
    echo, prompt = await score_echo(provider), await score_prompt_logprobs(provider)
    for a, b in zip(echo, prompt, strict=True):
        assert a.alignment == "exact" and a.covered_text == b.covered_text
        assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
        agreement = compare_logprobs(
            [x.logprob for x in a.tokens], [y.logprob for y in b.tokens], logit_scale=RECORDED_LOGIT_SCALE
        )
        assert agreement.ok, str(agreement)


@pytest.mark.parametrize("directory", vllm_dirs(), ids=lambda d: d.name)
async def test_vllm_probe_passes_every_check_on_replay(directory):
    provider, _ = await replayed(directory)
    report = await run_probe(provider)
    assert [c.name for c in report.checks if not c.ok] == []
    assert report.can_target and report.can_reference


async def test_unrecorded_request_raises():
    provider, _ = await replayed(vllm_dirs()[0])
    with pytest.raises(errors.FixtureMissError, match="no recorded exchange"):
        await provider.generate(GenerateRequest(prompt="never recorded prompt", max_tokens=3))


def refuse_all() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: pytest.fail(f"no request expected: {request.url}"))


async def test_openai_refuses_prefill_before_any_request():
    provider = await connect("https://api.openai.com/v1", "gpt-4o-mini", transport=refuse_all())
    prompt = (ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="The"))
    with pytest.raises(errors.CapabilityError, match="prefill"):
        await provider.generate(GenerateRequest(prompt=prompt))


async def test_openai_chat_model_cannot_be_a_reference():
    provider = await connect("https://api.openai.com/v1", "gpt-4o-mini", transport=refuse_all())
    with pytest.raises(errors.CapabilityError, match="self-hosted vLLM"):
        await provider.score(ScoreRequest(context="The", continuation=" cat"))


async def test_generic_endpoint_needs_declared_scoring():
    provider = await connect("http://127.0.0.1:1/v1", "m", dialect="generic", transport=refuse_all())
    with pytest.raises(errors.CapabilityError, match="missing echo or prompt_logprobs"):
        await provider.score(ScoreRequest(context="The", continuation=" cat"))
