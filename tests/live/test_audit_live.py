"""The audit end to end on the real local vLLM: self-consistency and cross-family runs."""

from __future__ import annotations

import json

import pytest

from blackbox_audit import local_vllm
from blackbox_audit.audit import audit_sync
from blackbox_audit.config import AuditConfig, EndpointConfig
from tests.live.conftest import require_server

SELF_CONSISTENCY_NATS_PER_TOKEN = 1e-3


def endpoint(model: local_vllm.LocalModel) -> EndpointConfig:
    return EndpointConfig(base_url=model.base_url, model=model.served_name)


@pytest.mark.parametrize("framing", ["raw", "chat"])
def test_self_consistency(live_model, framing, tmp_path):
    """Target = reference: every gap is 0 unless the record itself says why not."""
    config = AuditConfig(
        target=endpoint(live_model),
        reference=endpoint(live_model),
        limit=12,
        max_new_tokens=32,
        framing=framing,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    result = audit_sync(config, progress=False)
    assert len(result.results) == 12
    assert all(r.same_tokens is not None for r in result.results if r.gaps is not None), "one tokenizer: ids compared"
    unexplained = []
    for record in result.results:
        assert record.alignment in ("exact", "widened", "empty"), record.alignment_detail
        if record.gaps is None:
            continue
        if abs(record.gaps.logppl_diff) > SELF_CONSISTENCY_NATS_PER_TOKEN and record.alignment == "exact" and record.same_tokens:
            unexplained.append((record.prefill, record.completion, record.gaps.logppl_diff))
    assert unexplained == []
    counts = result.manifest["counts"]
    explained = sum(
        1 for r in result.results if r.gaps is not None and abs(r.gaps.logppl_diff) > SELF_CONSISTENCY_NATS_PER_TOKEN
    )
    assert explained <= counts["same_tokens_false"] + counts["alignment"].get("widened", 0)


@pytest.mark.parametrize(("target_key", "reference_key"), [("gemma3", "smollm2"), ("smollm2", "gemma3")])
def test_cross_family_audit_writes_everything(target_key, reference_key, tmp_path):
    target, reference = require_server(target_key), require_server(reference_key)
    config = AuditConfig(
        target=endpoint(target), reference=endpoint(reference), limit=50, out=tmp_path / "out", cache_dir=tmp_path / "cache"
    )
    result = audit_sync(config, progress=False)
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

    rerun = audit_sync(config.model_copy(update={"out": tmp_path / "again"}), progress=False)
    assert rerun.manifest["target"]["requests"]["http_requests"] == 0
    assert rerun.manifest["reference"]["requests"]["http_requests"] == 0
    assert (tmp_path / "again" / "results.jsonl").read_text() == (out / "results.jsonl").read_text()
