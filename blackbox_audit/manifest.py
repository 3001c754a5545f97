"""manifest.json: what was asked (the config, secrets excluded), of whom (endpoints, versions,
capabilities, tokenizers), what it cost (requests, retries, cache hits, timings) and what came out
(counts)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from blackbox_audit.budget import TargetBudget
from blackbox_audit.config import AuditConfig
from blackbox_audit.null import NullDistribution
from blackbox_audit.sentinel import ModelCheck
from blackbox_audit.spool import RecordSpool
from providers.openai_compatible import OpenAICompatibleProvider


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def endpoint_facts(provider: OpenAICompatibleProvider) -> dict[str, Any]:
    stats = provider.http.stats
    return {
        "base_url": provider.base_url,
        "model": provider.model,
        "dialect": provider.dialect,
        "server_version": provider.server_version,
        "tokenizer": provider.tokenizer_source,
        "capabilities": provider.capabilities.model_dump(),
        "requests": {
            "http_requests": stats.http_requests,
            "retries": stats.retries,
            "cache_hits": stats.cache_hits,
            "cache_misses": stats.cache_misses,
            "by_path": dict(sorted(stats.by_path.items())),
        },
    }


def build_manifest(
    config: AuditConfig,
    target: OpenAICompatibleProvider,
    reference: OpenAICompatibleProvider,
    spool: RecordSpool,
    *,
    n_documents: int,
    n_skipped: int,
    tokenizer: str,
    timings: dict[str, float],
    null: NullDistribution | None = None,
    null_target: OpenAICompatibleProvider | None = None,
    model_check: ModelCheck | None = None,
    budget: TargetBudget | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "tool": {"name": "blackbox-audit", "version": version("blackbox-audit")},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "target": endpoint_facts(target),
        "reference": endpoint_facts(reference),
        "prefill_tokenizer": tokenizer,
        "counts": {
            "documents": n_documents,
            "documents_skipped": n_skipped,
            "prefills": len(spool),
            "alignment": dict(sorted(spool.alignment.items())),
            "same_tokens_false": spool.same_tokens_false,
            "degenerate": spool.degenerate,
            "demoted": sum(spool.demoted()),
        },
        "timings_s": timings,
    }
    if model_check is not None:
        manifest["target"]["served"] = {
            **model_check.served.model_dump(mode="json"),
            "changed": model_check.served.changed,
        }
        manifest["sentinel"] = model_check.sentinel.model_dump(mode="json")
    if budget is not None:
        manifest["budget"] = budget.model_dump(mode="json")
    if null is not None and null_target is not None:
        manifest["null"] = {
            **null.summary(),
            "beyond_max": spool.beyond_null,
            "null_target": endpoint_facts(null_target),
        }
    return manifest
