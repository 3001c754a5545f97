"""The MCP server against the real local vLLM servers, driven by the SDK's stdio client: the
recorded base audit's folder (Gemma 3 target, SmolLM2 reference), and an organism's audit when
the organism is served (organisms are not part of CI: that test skips when it is down)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import anyio
import pytest

from blackbox_audit.evaluate import load_organism
from blackbox_audit.hypotheses import load_statements
from providers.http import health_ok
from tests.live.conftest import require_server
from tests.mcp_session import TOOLS, investigate, server_parameters

REPO = Path(__file__).resolve().parents[2]
STATEMENTS = REPO / "organisms" / "statements" / "eiffel-marseille.statements"
EIFFEL = load_organism(REPO / "organisms" / "specs" / "eiffel-marseille.toml")


def test_every_tool_against_the_live_servers():
    require_server("smollm2")
    require_server("gemma3")
    statements = [h.statement for h in load_statements(STATEMENTS)]
    audit = REPO / "fixtures" / "audit-gemma3-smollm2-raw" / "outputs"
    findings = anyio.run(investigate, server_parameters(audit), EIFFEL, statements)
    assert findings.tools == TOOLS
    scored = findings.scored
    assert scored["row"]["gaps"]["logppl_diff"] == pytest.approx(
        scored["reference"]["log_ppl"] - scored["target"]["log_ppl"]
    )
    assert math.fsum(t["gap"] for t in scored["tokens"]) == pytest.approx(
        scored["reference"]["nll_nats"] - scored["target"]["nll_nats"], abs=1e-6
    )
    assert len(findings.samples) == 3
    assert len(findings.hypotheses["rows"]) == len(statements)


ORGANISM_AUDITS = {
    "eiffel-marseille": "blackbox_audit/data/demo/eiffel-marseille/outputs",
    "backdoor-kestrel": "fixtures/audit-backdoor-kestrel-raw/outputs",
}


@pytest.mark.parametrize("organism", sorted(ORGANISM_AUDITS))
def test_an_organism_hit_and_the_true_hypothesis_first_live(organism):
    """A recorded organism audit's folder, its endpoints live (python -m organisms.build NAME --serve)."""
    from blackbox_audit.inquiry import AuditFolder

    audit = REPO / ORGANISM_AUDITS[organism]
    config = AuditFolder.open(audit).config
    if not (health_ok(config.target.base_url) and health_ok(config.reference.base_url)):
        message = (
            f"the organism {organism} is not served at {config.target.base_url}: it is trained, not downloaded"
            f" (`python -m organisms.build {organism} --serve`, minutes); CI serves each in turn and sets"
            " BLACKBOX_AUDIT_REQUIRE_ORGANISM to it"
        )
        if os.environ.get("BLACKBOX_AUDIT_REQUIRE_ORGANISM") == organism:
            pytest.fail(message)
        pytest.skip(reason=message)
    spec = load_organism(REPO / "organisms" / "specs" / f"{organism}.toml")
    statements = [h.statement for h in load_statements(REPO / "organisms" / "statements" / f"{organism}.statements")]
    findings = anyio.run(investigate, server_parameters(audit), spec, statements)
    assert findings.hit is not None and findings.hit["rank"] <= 10
    assert findings.hypotheses["rows"][0]["statement"] == statements[0]
