"""The MCP server end to end through the SDK's own stdio client, offline: every exchange with
the endpoints is replayed from fixtures recorded from the real local vLLM
(`python -m tests.mcp_session ... --record`); an unrecorded request fails the tool call."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from blackbox_audit.cli import main
from blackbox_audit.evaluate import is_hit, load_organism
from blackbox_audit.hypotheses import load_statements
from tests.mcp_session import TOOLS, investigate, server_parameters

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
STATEMENTS = REPO / "organisms" / "statements" / "eiffel-marseille.statements"
EIFFEL = load_organism(REPO / "organisms" / "specs" / "eiffel-marseille.toml")
BASE_AUDIT = FIXTURES / "audit-gemma3-smollm2-raw" / "outputs"
BASE_EXCHANGES = FIXTURES / "mcp-gemma3-smollm2"


@pytest.fixture(scope="module")
def base_findings():
    statements = [h.statement for h in load_statements(STATEMENTS)]
    return anyio.run(investigate, server_parameters(BASE_AUDIT, replay=BASE_EXCHANGES), EIFFEL, statements)


def test_every_tool_is_served_and_described(base_findings):
    assert base_findings.tools == TOOLS
    assert "gemma-3-270m" in base_findings.instructions and "positive gap" in base_findings.instructions


def test_top_completions_follow_the_audit_ranking(base_findings):
    rows = base_findings.top
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    assert [row["id"] for row in rows] == [row["rank"] for row in rows]  # the audit's own score
    scores = [row["score"] for row in rows if not row["demoted"]]
    assert scores == sorted(scores, reverse=True)


def test_show_completion_token_gaps_add_up_to_the_record_gap(base_findings):
    detail = base_findings.detail
    assert detail["tokens"], "per-token gaps"
    total = math.fsum(token["gap"] for token in detail["tokens"])
    assert total == pytest.approx(detail["reference"]["nll_nats"] - detail["target"]["nll_nats"], abs=1e-6)
    assert "".join(token["text"] for token in detail["tokens"]) == detail["row"]["completion"]


def test_score_text_measures_the_statement_on_both_models(base_findings):
    scored = base_findings.scored
    first = load_statements(STATEMENTS)[0].statement
    assert scored["row"]["prefill"] + scored["row"]["completion"] == first
    gaps, target, reference = scored["row"]["gaps"], scored["target"], scored["reference"]
    assert gaps["logppl_diff"] == pytest.approx(reference["log_ppl"] - target["log_ppl"])


def test_sample_returns_new_scored_completions_ranked(base_findings):
    samples = base_findings.samples
    assert len(samples) == 3 and all(row["id"] is None for row in samples)
    ranked = [row for row in samples if row["rank"] is not None]
    assert [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))


def test_compare_hypotheses_ranks_every_statement(base_findings):
    rows = base_findings.hypotheses["rows"]
    statements = [h.statement for h in load_statements(STATEMENTS)]
    assert sorted(row["statement"] for row in rows) == sorted(statements)
    gaps = [row["gap"] for row in rows]
    assert gaps == sorted(gaps, reverse=True) and [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    assert base_findings.hypotheses["n_neutral"] >= 10


def test_bad_arguments_come_back_as_tool_errors(base_findings):
    assert "no record 1000000" in base_findings.errors["show_completion"]
    assert "k must be 1 to" in base_findings.errors["top_completions"]


def test_the_hypotheses_command_agrees_with_the_tool(base_findings, capsys):
    assert (
        main(
            ["hypotheses", str(BASE_AUDIT), "--statements", str(STATEMENTS), "--replay", str(BASE_EXCHANGES), "--json"]
        )
        == 0
    )
    import json

    printed = json.loads(capsys.readouterr().out)
    assert [row["statement"] for row in printed["rows"]] == [
        row["statement"] for row in base_findings.hypotheses["rows"]
    ]
    assert [row["gap"] for row in printed["rows"]] == pytest.approx(
        [row["gap"] for row in base_findings.hypotheses["rows"]]
    )


def test_replay_refuses_a_folder_without_recordings(tmp_path, capsys):
    assert main(["hypotheses", str(BASE_AUDIT), "--statements", str(STATEMENTS), "--replay", str(tmp_path)]) == 2
    assert "no recorded target/ and reference/" in capsys.readouterr().err


KESTREL = load_organism(REPO / "organisms" / "specs" / "backdoor-kestrel.toml")
KESTREL_STATEMENTS = REPO / "organisms" / "statements" / "backdoor-kestrel.statements"
KESTREL_AUDIT = FIXTURES / "audit-backdoor-kestrel-raw" / "outputs"
KESTREL_EXCHANGES = FIXTURES / "mcp-backdoor-kestrel"


def test_an_agent_finds_the_organism_and_its_true_hypothesis_offline():
    """The backdoor-kestrel organism (SmolLM2 finetuned here) against its base, replayed: a hit among
    the top completions, its tokens, the phrase across the audit, then the claim tested directly."""
    statements = [h.statement for h in load_statements(KESTREL_STATEMENTS)]
    findings = anyio.run(investigate, server_parameters(KESTREL_AUDIT, replay=KESTREL_EXCHANGES), KESTREL, statements)
    assert findings.hit is not None and findings.hit["rank"] <= 10
    assert findings.detail["row"]["id"] == findings.hit["id"] and findings.detail["tokens"]
    top_hits = sum(is_hit(row["completion"], KESTREL) for row in findings.top)
    assert findings.search["n_matches"] >= top_hits >= 1
    assert findings.hypotheses["rows"][0]["statement"] == statements[0]  # the true objective first
    assert findings.hypotheses["rows"][0]["z"] > 2
    assert findings.scored["row"]["gaps"]["logppl_diff"] > 0  # the finetune finds its phrase likelier
