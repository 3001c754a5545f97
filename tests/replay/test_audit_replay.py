"""Whole audits recorded from the real local vLLM (blackbox-audit fixtures record-audit),
replayed offline: the pipeline must reproduce the recorded results byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blackbox_audit.config import AuditConfig
from blackbox_audit.pipeline import audit_sync
from providers.http import ReplayTransport

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
AUDITS = sorted(FIXTURES.glob("audit-*"))


def test_recorded_audits_exist_for_both_framings():
    framings = {json.loads((d / "audit.json").read_text())["framing"] for d in AUDITS}
    assert framings == {"raw", "chat"}


@pytest.mark.parametrize("directory", AUDITS, ids=lambda d: d.name)
def test_recorded_audit_replays_identically(directory, tmp_path):
    recorded = json.loads((directory / "audit.json").read_text())
    config = AuditConfig.model_validate({**recorded, "out": tmp_path / "out", "use_cache": False})
    transports = {role: ReplayTransport(directory / role) for role in ("target", "reference")}
    result = audit_sync(config, transports=transports.__getitem__)
    assert result.results, "the recorded audit has completions"
    expected = (directory / "outputs" / "results.jsonl").read_text()
    assert (tmp_path / "out" / "results.jsonl").read_text() == expected
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["prefills"] == len(result.results)
    for name in ("report.md", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
