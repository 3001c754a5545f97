"""Cases 3 and 5: a full audit end to end with a fresh cache, then the same audit again
on the warm cache; and the floor jobs for the same work (offline generation of the same
prefills on the target model, prompt logprobs of the same texts on the reference)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from blackbox_audit import local_vllm
from blackbox_audit.pipeline import audit_sync
from blackbox_audit.config import AuditConfig, EndpointConfig


@dataclass
class AuditRun:
    wall_s: float
    client_cpu_s: float
    manifest: dict
    results_path: Path

    def requests(self, role: str) -> int:
        return self.manifest[role]["requests"]["http_requests"]

    def by_path(self, role: str) -> dict[str, int]:
        return {k.rsplit("/", 1)[-1]: v for k, v in self.manifest[role]["requests"]["by_path"].items()}


def audit_config(
    target_key: str, reference_key: str, *, prefills: int, max_new_tokens: int, workdir: Path, out: str
) -> AuditConfig:
    target, reference = local_vllm.MODELS[target_key], local_vllm.MODELS[reference_key]
    return AuditConfig(
        target=EndpointConfig(base_url=target.base_url, model=target.served_name),
        reference=EndpointConfig(base_url=reference.base_url, model=reference.served_name),
        limit=prefills,
        max_new_tokens=max_new_tokens,
        out=workdir / out,
        cache_dir=workdir / "audit-cache",
    )


def fresh_cache(config: AuditConfig) -> None:
    assert config.cache_dir is not None
    shutil.rmtree(config.cache_dir, ignore_errors=True)


def run_audit(config: AuditConfig) -> AuditRun:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = audit_sync(config)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return AuditRun(wall_s=wall, client_cpu_s=cpu, manifest=result.manifest, results_path=config.out / "results.jsonl")


def floor_jobs(results_path: Path, max_new_tokens: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(generation jobs for the target model, scoring jobs for the reference, the records)."""
    records = [json.loads(line) for line in results_path.read_text().splitlines()]
    records.sort(key=lambda r: r["prefill_id"])
    generate = [
        {
            "name": "audit_generation",
            "kind": "generate",
            "prompts": [r["prefill"] for r in records],
            "max_tokens": max_new_tokens,
        }
    ]
    score = [
        {
            "name": "audit_scoring",
            "kind": "score_texts",
            "pairs": [[r["prefill"], r["completion"]] for r in records if r["completion"]],
        }
    ]
    return generate, score, records
