"""Whole audits recorded from the real local vLLM (blackbox-audit fixtures record-audit),
replayed offline: the pipeline must reproduce the recorded results byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blackbox_audit.config import AuditConfig
from blackbox_audit.pipeline import audit_sync
from blackbox_audit.profile import best_collapsed_window, best_window, byte_profile
from blackbox_audit.ranking import demoted_flags
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


def test_the_window_width_and_the_span_score_reach_every_record(tmp_path):
    """--window-bytes and --score collapsed_window_gap on a recorded audit: each record's span
    scores are its profile's best windows at that width, and the ranking follows them."""
    directory = FIXTURES / "audit-backdoor-kestrel-raw"
    recorded = json.loads((directory / "audit.json").read_text())
    overrides = {"out": tmp_path / "out", "use_cache": False, "window_bytes": 16, "score": "collapsed_window_gap"}
    config = AuditConfig.model_validate({**recorded, **overrides})
    transports = {role: ReplayTransport(directory / role) for role in ("target", "reference")}
    ranked = audit_sync(config, transports=transports.__getitem__).results
    scored = [r for r in ranked if r.gaps is not None]
    assert scored and all(r.profile is not None and r.profile.window_bytes == 16 for r in scored)
    for record in scored:
        profile = byte_profile(record.completion, record.target_tokens, record.reference_tokens)
        if record.reference_extra_chars == 0 and profile is not None:
            assert record.gaps.window_gap == best_window(profile.gap, 16).gap
            assert record.gaps.collapsed_window_gap == best_collapsed_window(profile, 16).gap
    demoted = demoted_flags(scored, 0.6, all_loops=False)
    values = [r.gaps.collapsed_window_gap for r, flag in zip(scored, demoted, strict=True) if not flag]
    assert values == sorted(values, reverse=True)
