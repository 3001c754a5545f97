"""The public names, pinned (as httpx pins its __all__), each the very object its module defines."""

from importlib import import_module

import pytest

import blackbox_audit
import providers

BLACKBOX_AUDIT = {
    "AuditConfig": "blackbox_audit.config",
    "AuditResult": "blackbox_audit.pipeline",
    "CompletionResult": "blackbox_audit.records",
    "EndpointConfig": "blackbox_audit.config",
    "audit": "blackbox_audit.pipeline",
    "audit_sync": "blackbox_audit.pipeline",
    "load_config": "blackbox_audit.config",
}


def test_blackbox_audit_exports():
    assert blackbox_audit.__all__ == sorted(BLACKBOX_AUDIT)
    for name, module in BLACKBOX_AUDIT.items():
        assert getattr(blackbox_audit, name) is getattr(import_module(module), name), name


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'audit_async'"):
        blackbox_audit.audit_async  # noqa: B018


def test_the_pipeline_module_does_not_shadow_the_audit_function():
    """A submodule named like an export would replace it on the package once imported."""
    import_module("blackbox_audit.pipeline")
    assert callable(blackbox_audit.audit) and blackbox_audit.audit.__name__ == "audit"


def test_providers_exports():
    assert {"connect", "GenerateRequest", "ScoreRequest", "CapabilityError"} <= set(providers.__all__)
    for name in providers.__all__:
        value = getattr(providers, name)
        module = getattr(value, "__module__", "")
        defined_in = module if module.startswith("providers.") else "providers.records"  # Prompt, a type alias
        assert value is getattr(import_module(defined_in), name), name
