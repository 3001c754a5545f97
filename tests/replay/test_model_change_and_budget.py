"""The sentinel and --max-target-tokens, through the real CLI against the fault servers replaying
the recorded raw audit (6 prefills, 24 new tokens each, one batched generation request).

A model swapped behind the API is played by a target server whose answers change after its
first generation request: the sentinel, asked at the end, then gets other logprobs (or another
system_fingerprint). A budget stops the audit with a complete output set of the prefills it
covered; the same command with a larger budget resumes from the cache and ends byte-identical
to the recorded unbudgeted audit.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from blackbox_audit.cli import main as cli_main
from tests.replay.faultserver import FaultServer, Rule, mutated
from tests.replay.test_faults import COMPLETIONS, RAW, _audit_args, before_sentinel, expected_results

RECORDED_MAX_NEW_TOKENS = 24
PREFILLS = 6


def _shift_logprobs(by: float):
    def transform(body: Any) -> Any:
        for choice in body["choices"]:
            choice["logprobs"]["token_logprobs"] = [v - by for v in choice["logprobs"]["token_logprobs"]]
        return body

    return transform


def _fingerprint(value: str):
    def transform(body: Any) -> Any:
        body["system_fingerprint"] = value
        return body

    return transform


def _after_first_generation(fault_name: str, transform) -> Rule:
    """Every generation answer after the first request's: the model behind the API changed."""
    return Rule(mutated(fault_name, transform), path=COMPLETIONS, nth=range(2, 1000))


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _reserved(server: FaultServer) -> int:
    """What the target's generation requests may have generated: max_tokens x prompts x n."""
    total = 0
    for served in server.log():
        if served.path == COMPLETIONS:
            body = served.body
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            total += body["max_tokens"] * len(prompts) * body.get("n", 1)
    return total


def test_an_unchanged_target_passes_the_sentinel(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    out = tmp_path / "out"
    assert cli_main(_audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet")) == 0
    stdout = capsys.readouterr().out
    assert (out / "results.jsonl").read_text() == expected_results(RAW)
    manifest = _manifest(out)
    sentinel = manifest["sentinel"]
    assert sentinel["checked"] and not sentinel["moved"] and sentinel["same_text"]
    assert sentinel["tokens_compared"] > 0 and sentinel["max_abs_diff"] == 0.0
    served = manifest["target"]["served"]
    assert served["first"] == served["last"] == {"model": "gemma-3-270m", "system_fingerprint": "vllm-0.32.0-8d385e74"}
    assert not served["changed"]
    assert "warning" not in stdout
    # The sentinel asked the server, not the cache: two generation requests, the second one prompt.
    generation = [r for r in target.log() if r.path == COMPLETIONS]
    assert len(generation) == 2 and len(generation[1].units) == 1


def test_logprobs_that_move_mid_audit_are_reported(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    target.add(_after_first_generation("model swapped", _shift_logprobs(0.05)))
    out = tmp_path / "out"
    assert cli_main(_audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet")) == 0
    stdout = capsys.readouterr().out
    sentinel = _manifest(out)["sentinel"]
    assert sentinel["checked"] and sentinel["moved"] and sentinel["same_text"]
    assert abs(sentinel["max_abs_diff"] - 0.05) < 1e-9 and sentinel["max_allowed"] < 0.01
    warnings = [line for line in stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the target's model changed during the audit" in warnings[0]
    assert "moved by up to 0.05 nats" in warnings[0]
    assert "the target's model changed during the audit" in (out / "report.md").read_text()
    assert target.faults_injected == 1  # the sentinel's answer alone


def test_a_changed_fingerprint_is_reported(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    target.add(_after_first_generation("new fingerprint", _fingerprint("vllm-0.33.0-new")))
    out = tmp_path / "out"
    assert cli_main(_audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet")) == 0
    stdout = capsys.readouterr().out
    manifest = _manifest(out)
    assert not manifest["sentinel"]["moved"]
    assert manifest["target"]["served"]["changed"]
    assert manifest["target"]["served"]["last"]["system_fingerprint"] == "vllm-0.33.0-new"
    warnings = [line for line in stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'vllm-0.32.0-8d385e74' -> " in warnings[0].replace("system_fingerprint ", "")


def test_no_sentinel_sends_no_extra_request(servers, tmp_path):
    target, reference = servers(RAW)
    out = tmp_path / "out"
    assert cli_main(_audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet", "--no-sentinel")) == 0
    assert [r.path for r in target.log()].count(COMPLETIONS) == 1
    assert _manifest(out)["sentinel"] == {
        **_manifest(out)["sentinel"],
        "checked": False,
        "detail": "off (--no-sentinel)",
    }


def test_a_budget_stops_cleanly_then_a_larger_one_resumes_identical(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    out, cache = tmp_path / "out", tmp_path / "cache"
    budget = 4 * RECORDED_MAX_NEW_TOKENS  # the sentinel's 24 and three completions'
    args = _audit_args(RAW, target, reference, out, cache, "--quiet")

    assert cli_main([*args, "--max-target-tokens", str(budget), "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"prefills \(at most\)\s+3$", table, re.MULTILINE)
    assert re.search(rf"target output tokens \(at most\)\s+{budget}$", table, re.MULTILINE)

    assert cli_main([*args, "--max-target-tokens", str(budget)]) == 3
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("budget reached: --max-target-tokens 96 covered 3 of 6 prefills")
    assert "--max-target-tokens 168" in lines[0] and "rerun the same command" in lines[0]
    assert _reserved(target) <= budget
    # A complete, consistent output set of what finished.
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.html", "report.md", "results.jsonl"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    manifest = _manifest(out)
    assert len(records) == manifest["counts"]["prefills"] == 3
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert manifest["budget"] == {
        "max_target_tokens": 96, "reserved_tokens": 96, "prefills_done": 3, "prefills_total": 6,
        "needed_tokens": 168, "reached": True,
    }  # fmt: skip
    assert manifest["sentinel"]["checked"] and not manifest["sentinel"]["moved"]
    assert "stopped at --max-target-tokens 96: 3 of 6 prefills audited" in (out / "report.md").read_text()
    first_run = Counter(u for r in before_sentinel(target.log()) for u in r.units)

    target.clear()
    reference.clear()
    assert cli_main([*args, "--max-target-tokens", "1000"]) == 0
    assert (out / "results.jsonl").read_text() == expected_results(RAW)
    assert "budget" in _manifest(out) and not _manifest(out)["budget"]["reached"]
    # The finished prefills came from the cache: the target generated only the other three.
    rerun = Counter(u for r in before_sentinel(target.log()) for u in r.units)
    assert not rerun & first_run
    generated = [r for r in before_sentinel(target.log()) if r.path == COMPLETIONS]
    assert sum(len(r.units) for r in generated) == PREFILLS - 3


def test_a_budget_that_covers_the_audit_changes_nothing(servers, tmp_path):
    target, reference = servers(RAW)
    out = tmp_path / "out"
    needed = (PREFILLS + 1) * RECORDED_MAX_NEW_TOKENS
    args = _audit_args(RAW, target, reference, out, tmp_path / "cache", "--quiet", "--max-target-tokens", str(needed))
    assert cli_main(args) == 0
    assert (out / "results.jsonl").read_text() == expected_results(RAW)
    assert _manifest(out)["budget"]["reached"] is False
    assert _reserved(target) == needed


def test_a_budget_below_one_completion_is_refused_before_any_request(servers, tmp_path, capsys):
    target, reference = servers(RAW)
    args = _audit_args(RAW, target, reference, tmp_path / "out", tmp_path / "cache", "--quiet")
    assert cli_main([*args, "--max-target-tokens", "47"]) == 2
    err = capsys.readouterr().err
    assert "--max-target-tokens: 47 covers no completion" in err and "give at least 48" in err
    assert target.count() == 0 and reference.count() == 0
