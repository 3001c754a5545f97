"""blackbox-audit: find what a finetuned model was trained to do, from its API alone.

    from blackbox_audit import audit_sync, load_config
    result = audit_sync(load_config("audit.toml", {"limit": 50}))

Names load on first use, so `blackbox-audit --help` stays instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "audit": "blackbox_audit.pipeline",
    "audit_sync": "blackbox_audit.pipeline",
    "AuditResult": "blackbox_audit.pipeline",
    "AuditConfig": "blackbox_audit.config",
    "EndpointConfig": "blackbox_audit.config",
    "load_config": "blackbox_audit.config",
    "CompletionResult": "blackbox_audit.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'blackbox_audit' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
