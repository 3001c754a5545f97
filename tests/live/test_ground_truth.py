"""Scores from the real local vLLM equal a transformers fp32 forward pass within what fp32
kernels may differ by (`providers.agreement`), and that comparison fails on real bugs: a
logprob shifted by one token, a template token scored."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from blackbox_audit import local_vllm
from blackbox_audit.local_vllm.truth import TRUTH_CASES, ForwardPass, forward
from providers.agreement import LogprobAgreement, compare_logprobs
from providers.openai_compatible import OpenAICompatibleProvider, _Prepared
from providers.probe import probe
from providers.records import GenerateRequest, ScoreRequest
from providers.registry import ScoreVia, connect
from providers.wire import Wire

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Served:
    """What vLLM scored: the full ids (context + continuation) and the continuation's logprobs."""

    sequences: list[list[int]]
    logprobs: list[list[float]]

    @property
    def counts(self) -> list[int]:
        return [len(values) for values in self.logprobs]


_truth: dict[str, tuple[Served, ForwardPass]] = {}


async def served_scores(model: local_vllm.LocalModel, *, score_via: ScoreVia | None = None) -> Served:
    provider = await connect(model.base_url, model.served_name, score_via=score_via)
    try:
        scored = await provider.score_many(TRUTH_CASES)
        sequences = []
        for request, result in zip(TRUTH_CASES, scored, strict=True):
            assert result.alignment == "exact" and result.covered_text == request.continuation
            ids = [t.token_id for t in result.tokens]
            assert None not in ids
            sequences.append(await provider.tokenize(request.context) + ids)  # type: ignore[operator]
    finally:
        await provider.aclose()
    return Served(sequences, [[t.logprob for t in result.tokens] for result in scored])


async def ground_truth(model: local_vllm.LocalModel) -> tuple[Served, ForwardPass]:
    """vLLM's scores of TRUTH_CASES and transformers' forward pass over the same ids, once per model."""
    if model.key not in _truth:
        served = await served_scores(model)
        _truth[model.key] = served, forward(model.key, served.sequences)
    return _truth[model.key]


def agreement(served: Served, truth: ForwardPass) -> LogprobAgreement:
    observed = [value for values in served.logprobs for value in values]
    expected = [value for values in truth.tails(served.counts) for value in values]
    return compare_logprobs(observed, expected, logit_scale=truth.logit_scale)


async def test_score_matches_transformers(live_model):
    served, truth = await ground_truth(live_model)
    result = agreement(served, truth)
    print(f"{live_model.key}: vLLM against transformers: {result}")
    assert result.ok, str(result)


def _assert_caught(result: LogprobAgreement) -> None:
    """A bug is not a near miss: it is far beyond both bounds."""
    assert not result.ok
    assert result.mean_abs_nats > 100 * result.mean_allowed_nats, str(result)
    assert result.max_abs_nats > 100 * result.max_allowed_nats, str(result)


async def test_the_comparison_catches_logprobs_shifted_by_one_token(live_model, monkeypatch):
    """The classic echo bug (llama.cpp's, with no BOS): the ids are right, but each logprob
    is its predecessor's."""
    _, truth = await ground_truth(live_model)  # before the bug is planted
    original = Wire.echo_logprobs

    def shifted(self, choice, i, prompt_ids, n_scored):
        values = choice["logprobs"]["token_logprobs"]
        broken = values[:2] + values[1:-1]
        return original(
            self, {**choice, "logprobs": {**choice["logprobs"], "token_logprobs": broken}}, i, prompt_ids, n_scored
        )

    monkeypatch.setattr(Wire, "echo_logprobs", shifted)
    served = await served_scores(live_model, score_via="echo")
    _assert_caught(agreement(served, truth))


async def test_the_comparison_catches_a_scored_template_token(live_model, monkeypatch):
    """The scored span starts one token early: the last token of the context (a chat
    template's, or the prefill's) is scored, and the completion's last token is not."""
    served, truth = await ground_truth(live_model)  # before the bug is planted
    original = OpenAICompatibleProvider._prepare

    async def one_early(self, request: ScoreRequest) -> _Prepared:
        plan = await original(self, request)
        if len(plan.prompt_ids) - plan.n_scored < 2:
            return plan  # a one-token context has no token before it to score
        return _Prepared(plan.prompt_ids[:-1], plan.n_scored, plan.alignment, plan.covered_text, plan.n_context_chars)

    monkeypatch.setattr(OpenAICompatibleProvider, "_prepare", one_early)
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        scored = await provider.score_many(TRUTH_CASES)
    finally:
        await provider.aclose()
    broken = Served(served.sequences, [[t.logprob for t in result.tokens] for result in scored])
    _assert_caught(agreement(broken, truth))


async def test_echo_and_prompt_logprobs_agree(live_model):
    echo, truth = await ground_truth(live_model)
    prompt = await served_scores(live_model, score_via="prompt_logprobs")
    assert prompt.sequences == echo.sequences
    result = compare_logprobs(
        [v for values in prompt.logprobs for v in values],
        [v for values in echo.logprobs for v in values],
        logit_scale=truth.logit_scale,
    )
    assert result.ok, str(result)


async def test_generation_logprobs_match_scoring(live_model):
    """The target's own generation logprobs (decoding, token by token) equal a forward pass
    over the whole sequence afterwards."""
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        prompt = "The history of the printing press"
        completion = (await provider.generate(GenerateRequest(prompt=prompt, max_tokens=24))).completions[0]
        ids = await provider.tokenize(prompt) + [t.token_id for t in completion.tokens]  # type: ignore[operator]
    finally:
        await provider.aclose()
    truth = forward(live_model.key, [ids])
    result = compare_logprobs(
        [t.logprob for t in completion.tokens], truth.tails([len(completion.tokens)])[0], logit_scale=truth.logit_scale
    )
    assert result.ok, str(result)


async def test_probe_passes_both_roles(live_model):
    provider = await connect(live_model.base_url, live_model.served_name)
    try:
        report = await probe(provider)
    finally:
        await provider.aclose()
    assert [c.name for c in report.checks if not c.ok] == []
    assert report.can_target and report.can_reference


async def test_served_tokenizer_is_adopted_and_scores_identically(live_model):
    """ "auto" finds the served folder's tokenizer.json, which matches /tokenize, and then scores
    with the very same ids and logprobs while sending no tokenizer request."""
    server = await connect(live_model.base_url, live_model.served_name, tokenizer="server")
    local = await connect(live_model.base_url, live_model.served_name, tokenizer="auto")
    try:
        assert local.local_tokenizer is not None, local.tokenizer_source
        assert local.local_tokenizer.path.parent == local_vllm.model_dir(live_model.key)
        before = dict(local.http.stats.by_path)
        a, b = await server.score_many(TRUTH_CASES), await local.score_many(TRUTH_CASES)
        sent = {path: n - before.get(path, 0) for path, n in local.http.stats.by_path.items()}
    finally:
        await server.aclose()
        await local.aclose()
    chat_contexts = sum(not isinstance(case.context, str) for case in TRUTH_CASES)
    assert sum(n for path, n in sent.items() if "tokenize" in path) == chat_contexts  # only the chat templates
    for x, y in zip(a, b, strict=True):
        assert [t.token_id for t in x.tokens] == [t.token_id for t in y.tokens]
        assert [t.logprob for t in x.tokens] == [t.logprob for t in y.tokens]
