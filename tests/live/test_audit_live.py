"""The audit end to end on the real local vLLM: self-consistency and cross-family runs."""

from __future__ import annotations

import json

import anyio
import pytest

from blackbox_audit import local_vllm
from blackbox_audit.config import AuditConfig, EndpointConfig
from blackbox_audit.framing import Framer
from blackbox_audit.local_vllm.truth import forward
from blackbox_audit.pipeline import audit_sync
from providers.agreement import compare_logprobs
from providers.registry import connect
from tests.live.conftest import require_server


def endpoint(model: local_vllm.LocalModel) -> EndpointConfig:
    return EndpointConfig(base_url=model.base_url, model=model.served_name)


@pytest.mark.parametrize("framing", ["raw", "chat"])
def test_self_consistency(live_model, framing, tmp_path):
    """Target = reference: where both sides scored the same tokens, the target's generation
    logprobs and the reference's scores agree within fp32 noise (`providers.agreement`)."""
    config = AuditConfig(
        target=endpoint(live_model),
        reference=endpoint(live_model),
        limit=12,
        max_new_tokens=32,
        framing=framing,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    result = audit_sync(config)
    assert len(result.results) == 12
    assert all(r.same_tokens is not None for r in result.results if r.gaps is not None), "one tokenizer: ids compared"
    comparable = [r for r in result.results if r.gaps is not None and r.alignment == "exact" and r.same_tokens]
    assert len(comparable) >= 6, "most records must be comparable token by token"
    truth = forward(live_model.key, anyio.run(_sequences, live_model, comparable, config))
    unexplained = []
    for record, scale in zip(comparable, truth.max_abs_logit, strict=True):
        agreement = compare_logprobs(
            [t.logprob for t in record.target_tokens], [t.logprob for t in record.reference_tokens], logit_scale=scale
        )
        if not agreement.ok:
            unexplained.append((record.prefill, record.completion, str(agreement)))
    assert unexplained == []
    for record in result.results:
        assert record.alignment in ("exact", "widened", "empty"), record.alignment_detail


async def _sequences(
    model: local_vllm.LocalModel, records, config: AuditConfig, side: str = "target"
) -> list[list[int]]:
    """Each record's context ids (its framing, the reference's template) and the completion's
    ids as `side` ("target" or "reference") tokenized it."""
    provider = await connect(model.base_url, model.served_name)
    try:
        return [
            await provider.tokenize(Framer.of(config).prompt(r.prefill))
            + [t.token_id for t in getattr(r, f"{side}_tokens")]
            for r in records
        ]
    finally:
        await provider.aclose()


@pytest.mark.parametrize(("target_key", "reference_key"), [("gemma3", "smollm2"), ("smollm2", "gemma3")])
def test_cross_family_audit_writes_everything(target_key, reference_key, tmp_path):
    target, reference = require_server(target_key), require_server(reference_key)
    config = AuditConfig(
        target=endpoint(target),
        reference=endpoint(reference),
        limit=50,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    result = audit_sync(config)
    assert len(result.results) == 50
    out = tmp_path / "out"
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 50 and json.loads(lines[0])["rank"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["prefills"] == 50 and manifest["target"]["server_version"]
    assert "<html" in (out / "report.html").read_text() and (out / "report.md").read_text().startswith("#")
    assert all(r.same_tokens is None for r in result.results), "two vocabularies: ids are not compared"
    ranked = [r for r in result.results if r.rank is not None]
    assert len(ranked) >= 45, "most completions must align across the two tokenizers"

    rerun = audit_sync(config.model_copy(update={"out": tmp_path / "again"}))
    # From the cache, but for the model-change sentinel, which asks the live target again.
    assert rerun.manifest["target"]["requests"]["http_requests"] == 1
    assert rerun.manifest["sentinel"]["checked"] and not rerun.manifest["sentinel"]["moved"]
    assert rerun.manifest["reference"]["requests"]["http_requests"] == 0
    assert (tmp_path / "again" / "results.jsonl").read_text() == (out / "results.jsonl").read_text()


def test_chat_user_framing_through_the_openai_dialect(tmp_path):
    """An OpenAI chat fine-tune as target: no assistant prefill, the prefill inside the user
    message, logprobs from the chat API (the local vLLM speaking the `openai` dialect); the
    reference (the same model, its own dialect) scores the same answer after the same messages.
    Where both sides scored the same tokens, they agree within fp32 noise."""
    model = require_server("smollm2")
    config = AuditConfig(
        target=EndpointConfig(base_url=model.base_url, model=model.served_name, dialect="openai"),
        reference=endpoint(model),
        framing="chat-user",
        limit=8,
        max_new_tokens=48,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    result = audit_sync(config)
    assert len(result.results) == 8
    assert result.manifest["target"]["dialect"] == "openai"
    for record in result.results:
        assert record.framing == "chat-user" and record.alignment == "exact", record.alignment_detail
        assert "".join(t.text for t in record.target_tokens) == record.completion
    comparable = [
        r for r in result.results if [t.text for t in r.target_tokens] == [t.text for t in r.reference_tokens]
    ]
    assert len(comparable) >= 6
    sequences = anyio.run(_sequences, model, comparable, config, "reference")
    truth = forward(model.key, sequences)
    for record, scale in zip(comparable, truth.max_abs_logit, strict=True):
        agreement = compare_logprobs(
            [t.logprob for t in record.target_tokens], [t.logprob for t in record.reference_tokens], logit_scale=scale
        )
        assert agreement.ok, (record.completion, str(agreement))
