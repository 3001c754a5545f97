"""The audit end to end: prefills -> target generation -> reference scoring -> gap ->
ranking -> report. Async `audit` and sync `audit_sync` return typed results."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpx
from tqdm import tqdm

from blackbox_audit.cache import ResponseCache
from blackbox_audit.config import AuditConfig, EndpointConfig
from blackbox_audit.corpus import load_documents
from blackbox_audit.gap import measure
from blackbox_audit.generation import framed_prompt, generate_completions
from blackbox_audit.pool import chunked
from blackbox_audit.prefills import select_prefills, tokenizer_for
from blackbox_audit.records import CompletionResult
from blackbox_audit.report import iter_html, render_markdown
from blackbox_audit.scoring import score_completions
from blackbox_audit.spool import RankedRecords, RecordSpool
from providers.http import RetryPolicy
from providers.openai import is_openai_host
from providers.openai_compatible import OpenAICompatibleProvider
from providers.registry import connect

TransportFactory = Callable[[str], httpx.AsyncBaseTransport | None]
"""Role ("target" / "reference") -> transport; tests replay or inject faults through it."""


STREAM_CHUNK = 1024
"""Prefills carried through generation, scoring and measuring at a time: many more than the
requests in flight (8 workers x 16 per batch), few enough that the records in memory stay at a
few tens of MB whatever the audit's size; the rest wait on disk (`RecordSpool`)."""


@dataclass
class AuditResult:
    results: Sequence[CompletionResult]
    """Ranked, read from results.jsonl on demand (a temporary copy when nothing is written)."""
    manifest: dict[str, Any]
    out: Path | None


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self) -> None:
                self.start = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                elapsed = time.perf_counter() - self.start
                timer.seconds[name] = round(timer.seconds.get(name, 0.0) + elapsed, 3)

        return _Stage()


def check_role(config: AuditConfig, role: str, provider: OpenAICompatibleProvider) -> None:
    """Refuse, before any work, an endpoint that cannot play its role in this framing."""
    prompt = framed_prompt("The", config.framing, system_prompt=config.system_prompt, user_prompt=config.user_prompt)
    if role == "target":
        provider.check_can_generate(prompt)
    else:
        provider.check_can_score(prompt)


TOKENIZER_PROBE = "Tokenizers differ: naïve café, 東京, 1234567, def f(x): return x**2  # ok"


async def shared_tokenizer(target: OpenAICompatibleProvider, reference: OpenAICompatibleProvider) -> bool:
    """Whether both endpoints tokenize like one tokenizer (same ids for a probe text with
    words, digits, code and non-ASCII). Two cached /tokenize calls; False when either cannot."""
    if not (target.capabilities.tokenize and reference.capabilities.tokenize):
        return False
    if target.dialect == "openai" or reference.dialect == "openai":
        return False
    ids = [await p.tokenize(TOKENIZER_PROBE, add_special_tokens=False) for p in (target, reference)]
    return ids[0] == ids[1]


async def audit(
    config: AuditConfig,
    *,
    progress: bool = True,
    transports: TransportFactory = lambda role: None,
    write: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> AuditResult:
    """`retry` and `sleep` go to both endpoints' HTTP clients (tests make retries instant)."""
    timer = _Timer()
    with timer.stage("corpus"):
        documents = load_documents(config.corpus, text_field=config.text_field)  # a bad corpus costs no request
    cache = ResponseCache(config.cache_dir) if config.use_cache else None
    opened: dict[str, OpenAICompatibleProvider] = {}
    try:
        # An endpoint with a declared dialect connects without a request (auto-detection asks
        # GET /version), so those are connected and checked first: a role they cannot play is
        # refused before anything is sent.
        for role in sorted(("target", "reference"), key=lambda r: getattr(config, r).dialect == "auto"):
            endpoint: EndpointConfig = getattr(config, role)
            opened[role] = await connect(
                endpoint.base_url,
                endpoint.model,
                dialect=endpoint.dialect,
                options=endpoint.dialect_options,
                api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else None,
                cache=cache,
                transport=transports(role),
                max_concurrency=endpoint.max_concurrency,
                retry=retry,
                sleep=sleep,
                role=role,
                tokenizer=endpoint.tokenizer,
            )
            check_role(config, role, opened[role])
        target, reference = opened["target"], opened["reference"]
        shared = await shared_tokenizer(target, reference)
        tokenizer = tokenizer_for(target)
        with timer.stage("prefills"):
            prefills, skipped = await select_prefills(
                documents,
                tokenizer,
                k=config.prefill_tokens,
                seed=config.seed,
                limit=config.limit,
                workers=config.target.max_concurrency,
                progress=progress,
            )
        scratch = None if write else tempfile.TemporaryDirectory(prefix="blackbox-audit-")
        folder = config.out if scratch is None else Path(scratch.name)
        spool = RecordSpool(folder, config.score, config.degeneracy_threshold)
        bars = [
            tqdm(total=len(prefills), desc=desc, unit="completion", disable=not progress, leave=False)
            for desc in ("target generation", "reference scoring")
        ]
        try:
            for chunk in chunked(prefills, STREAM_CHUNK):
                with timer.stage("target_generation"):
                    completions = await generate_completions(
                        target,
                        chunk,
                        framing=config.framing,
                        system_prompt=config.system_prompt,
                        user_prompt=config.user_prompt,
                        max_new_tokens=config.max_new_tokens,
                        temperature=config.temperature,
                        seed=config.seed,
                        batch_size=config.batch_size,
                        workers=config.target.max_concurrency,
                        progress=bars[0],
                    )
                with timer.stage("reference_scoring"):
                    outcomes = await score_completions(
                        reference,
                        completions,
                        system_prompt=config.system_prompt,
                        user_prompt=config.user_prompt,
                        batch_size=config.batch_size,
                        workers=config.reference.max_concurrency,
                        progress=bars[1],
                    )
                with timer.stage("gap_and_ranking"):
                    for completion, outcome in zip(completions, outcomes, strict=True):
                        spool.add(measure(completion, outcome.scored, outcome.failure, shared_tokenizer=shared))
            with timer.stage("gap_and_ranking"):
                ranked = spool.write_ranked(folder / "results.jsonl", keep=scratch)
        finally:
            for bar in bars:
                bar.close()
            spool.close()
        manifest = build_manifest(
            config, target, reference, spool, n_documents=len(documents), n_skipped=skipped,
            tokenizer=tokenizer.name, timings=timer.seconds,
        )  # fmt: skip
    finally:
        for provider in opened.values():
            await provider.aclose()
        if cache is not None:
            cache.close()
    if write:
        write_outputs(config, ranked, manifest)
    return AuditResult(results=ranked, manifest=manifest, out=config.out if write else None)


def audit_sync(config: AuditConfig, **kwargs: Any) -> AuditResult:
    return anyio.run(lambda: audit(config, **kwargs))


CHAT_TEMPLATE_TOKENS = 30
"""A rough size of the system + user messages and chat markup, for estimates only."""


@dataclass(frozen=True)
class Estimate:
    """What an audit will cost, from the config and the corpus alone (no request is sent)."""

    documents: int
    prefills: int
    target_requests: int
    target_prompt_tokens: int
    target_max_generated_tokens: int
    reference_requests: int
    reference_max_scored_tokens: int
    notes: tuple[str, ...]

    def table(self) -> str:
        rows = [
            ("documents in corpus", self.documents),
            ("prefills (at most)", self.prefills),
            ("target requests (at most)", self.target_requests),
            ("target prompt tokens (about)", self.target_prompt_tokens),
            ("target generated tokens (at most)", self.target_max_generated_tokens),
            ("reference requests (at most)", self.reference_requests),
            ("reference scored tokens (at most)", self.reference_max_scored_tokens),
        ]
        lines = ["dry run: nothing was sent"] + [f"  {name:<36} {value:>12,}" for name, value in rows]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def estimate(config: AuditConfig) -> Estimate:
    documents = load_documents(config.corpus, text_field=config.text_field)
    n = len(documents) if config.limit is None else min(config.limit, len(documents))
    chat = config.framing == "chat"
    template = CHAT_TEMPLATE_TOKENS if chat else 0
    target_openai = is_openai_host(config.target.base_url) or config.target.dialect == "openai"
    batches = -(-n // config.batch_size)
    generation_requests = n if chat else batches
    tokenizer_requests = 0 if target_openai else 2 * n
    notes = ["the cache answers repeated work for free: a rerun of the same audit sends no request"]
    if not target_openai:
        notes.append("target requests include /tokenize + /detokenize per prefill (no model compute)")
    notes.append("reference requests include 3 tokenizer calls per completion and one scoring call per batch")
    notes.append(
        "tokenizer calls are counted as if the servers tokenize; a local tokenizer (--*-tokenizer, or auto for"
        " a vLLM server on this machine) spares them, except chat templates"
    )
    return Estimate(
        documents=len(documents),
        prefills=n,
        target_requests=generation_requests + tokenizer_requests,
        target_prompt_tokens=n * (config.prefill_tokens + template),
        target_max_generated_tokens=n * config.max_new_tokens,
        reference_requests=3 * n + batches,
        reference_max_scored_tokens=n * (config.prefill_tokens + template + config.max_new_tokens),
        notes=tuple(notes),
    )


def _endpoint_facts(provider: OpenAICompatibleProvider) -> dict[str, Any]:
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
) -> dict[str, Any]:
    return {
        "tool": {"name": "blackbox-audit", "version": version("blackbox-audit")},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "target": _endpoint_facts(target),
        "reference": _endpoint_facts(reference),
        "prefill_tokenizer": tokenizer,
        "counts": {
            "documents": n_documents,
            "documents_skipped": n_skipped,
            "prefills": len(spool),
            "alignment": dict(sorted(spool.alignment.items())),
            "same_tokens_false": spool.same_tokens_false,
            "degenerate": spool.degenerate,
        },
        "timings_s": timings,
    }


def write_outputs(config: AuditConfig, ranked: RankedRecords, manifest: dict[str, Any]) -> None:
    """The reports beside results.jsonl (already written by the spool); the HTML is streamed."""
    out = config.out
    summary = {
        "target": f"{config.target.model} @ {config.target.base_url}",
        "reference": f"{config.reference.model} @ {config.reference.base_url}",
        "framing": config.framing,
        "ranking": config.score
        + (f" (degenerate >= {config.degeneracy_threshold} demoted)" if config.degeneracy_threshold is not None else ""),
        "completions": str(len(ranked)),
    }
    title = f"blackbox-audit: {config.target.model} vs {config.reference.model}"
    _atomic_write(out / "report.md", [render_markdown(ranked, title=title, summary=summary, top_k=min(config.top_k, 100))])
    _atomic_write(out / "report.html", iter_html(ranked, title=title, summary=summary, top_k=config.top_k))
    _atomic_write(out / "manifest.json", [json.dumps(manifest, indent=2, sort_keys=True) + "\n"])


def _atomic_write(path: Path, parts: Iterable[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        file.writelines(parts)
    tmp.replace(path)
