"""The public names, pinned (as httpx pins its __all__)."""

import blackbox_audit
import providers


def test_blackbox_audit_exports():
    assert blackbox_audit.__all__ == ["AuditConfig", "AuditResult", "CompletionResult", "EndpointConfig", "audit", "audit_sync"]
    for name in blackbox_audit.__all__:
        assert getattr(blackbox_audit, name) is not None


def test_providers_exports():
    for name in providers.__all__:
        assert getattr(providers, name) is not None
    assert {"connect", "GenerateRequest", "ScoreRequest", "CapabilityError"} <= set(providers.__all__)
