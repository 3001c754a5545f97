"""The audit end to end: prefills -> framing -> target generation -> reference scoring -> gap ->
ranking -> report. Async `audit` and sync `audit_sync` return typed results."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from blackbox_audit.budget import TargetBudget, plan_budget
from blackbox_audit.config import AuditConfig
from blackbox_audit.corpus import load_documents
from blackbox_audit.endpoints import TransportFactory, open_endpoints, shared_tokenizer
from blackbox_audit.estimate import STREAM_CHUNK
from blackbox_audit.framing import Framer
from blackbox_audit.gap import measure
from blackbox_audit.generation import generate_completions
from blackbox_audit.hooks import Hooks, QuietHooks
from blackbox_audit.manifest import Timer, build_manifest
from blackbox_audit.null import NullDistribution
from blackbox_audit.outputs import OutputSet, write_reports
from blackbox_audit.pool import chunked
from blackbox_audit.prefills import PrefillError, select_prefills, tokenizer_for
from blackbox_audit.records import CompletionResult, Prefill, TargetCompletion
from blackbox_audit.report import results_jsonl_line
from blackbox_audit.scoring import score_completions
from blackbox_audit.sentinel import ModelCheck, ServedChange, check_model, sentinel_candidate
from blackbox_audit.spool import RecordSpool
from providers.http import RetryPolicy
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ServedModel


@dataclass
class AuditResult:
    results: Sequence[CompletionResult]
    """Ranked, read from results.jsonl on demand (a temporary copy when nothing is written)."""
    manifest: dict[str, Any]
    out: Path | None
    model_check: ModelCheck
    """Whether the target's model changed during the audit (the sentinel, the served model)."""
    budget: TargetBudget | None = None
    """What --max-target-tokens allowed; `budget.reached`: only the first prefills were audited."""


async def audit(
    config: AuditConfig,
    *,
    hooks: Hooks | None = None,
    transports: TransportFactory = lambda role: None,
    write: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> AuditResult:
    """`hooks` hear of progress, retries and warnings; `retry` and `sleep` go to both endpoints'
    HTTP clients (tests make retries instant). With `write`, --out receives the whole set of
    outputs at the end, or keeps its previous set."""
    hooks = hooks or QuietHooks()
    timer = Timer()
    with timer.stage("corpus"):
        documents = load_documents(config.corpus, text_field=config.text_field)  # a bad corpus costs no request
    if config.limit is not None and config.limit > len(documents):
        hooks.warn(f"--limit {config.limit} asks for more prefills than the corpus has documents ({len(documents)})")
    output = OutputSet(config.out) if write else None
    scratch = tempfile.TemporaryDirectory(prefix="blackbox-audit-") if output is None else None
    folder = output.prepare() if output is not None else Path(scratch.name)  # type: ignore[union-attr]
    try:
        async with open_endpoints(config, hooks, transports, retry, sleep) as (target, reference, control):
            shared = await shared_tokenizer(target, reference)
            tokenizer = await tokenizer_for(target)
            with timer.stage("prefills"), hooks.stage("prefills", config.limit or len(documents), "prefill") as advance:
                prefills, skipped = await select_prefills(
                    documents, tokenizer, k=config.prefill_tokens, seed=config.seed, limit=config.limit,
                    workers=config.target.max_concurrency, advance=advance,
                )  # fmt: skip
            if not prefills:
                raise PrefillError.none_found(len(documents), skipped, config.prefill_tokens, config.corpus)
            null = None
            if control is not None:
                with timer.stage("null"):
                    null = await _null(config, hooks, control, reference, prefills, folder / "null.jsonl")
            budget = plan_budget(config.max_target_tokens, config.max_new_tokens, config.sentinel, len(prefills))
            audited = prefills[: budget.prefills_done] if budget is not None else prefills
            spool = RecordSpool(
                folder, config.score, config.degeneracy_threshold, demote_all_loops=config.demote_all_loops
            )
            try:
                seen = await _stream(
                    config, hooks, timer, target, reference, shared, audited, spool,
                    annotate=null.annotate() if null is not None else (lambda record: record),
                )  # fmt: skip
                with timer.stage("sentinel"):
                    model_check = await check_model(
                        target, seen.first, ServedChange(first=seen.first_served, last=seen.last_served),
                        max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed,
                        enabled=config.sentinel,
                    )  # fmt: skip
                with timer.stage("gap_and_ranking"):
                    ranked = spool.write_ranked(folder / "results.jsonl", keep=scratch)
            finally:
                spool.close()
            manifest = build_manifest(
                config, target, reference, spool, n_documents=len(documents), n_skipped=skipped,
                tokenizer=tokenizer.name, timings=timer.seconds, null=null, null_target=control,
                model_check=model_check, budget=budget,
            )  # fmt: skip
        if output is not None:
            write_reports(output, ranked, manifest, config)
            ranked = ranked.moved_to(output.commit() / "results.jsonl")
    except BaseException:
        if output is not None:
            output.abort()
        raise
    out = config.out if write else None
    return AuditResult(results=ranked, manifest=manifest, out=out, model_check=model_check, budget=budget)


def audit_sync(config: AuditConfig, **kwargs: Any) -> AuditResult:
    return anyio.run(lambda: audit(config, **kwargs))


async def _stream(
    config: AuditConfig,
    hooks: Hooks,
    timer: Timer,
    target: OpenAICompatibleProvider,
    reference: OpenAICompatibleProvider,
    shared_tokenizer: bool,
    prefills: Sequence[Prefill],
    spool: RecordSpool,
    *,
    annotate: Callable[[CompletionResult], CompletionResult],
) -> _Seen:
    """STREAM_CHUNK prefills at a time through generation, scoring and measuring; records wait on
    disk in the spool with only their sort keys in memory, so memory stays flat. Returns what the
    sentinel needs of the target's answers."""
    framer = Framer.of(config)
    total = len(prefills)
    seen = _Seen()
    with (
        hooks.stage("target generation", total, "completion") as generated,
        hooks.stage("reference scoring", total, "completion") as scored,
    ):
        for chunk in chunked(prefills, STREAM_CHUNK):
            with timer.stage("target_generation"):
                completions = await generate_completions(
                    target, [framer.frame(p) for p in chunk], max_new_tokens=config.max_new_tokens,
                    temperature=config.temperature, seed=config.seed, batch_size=config.batch_size,
                    workers=config.target.max_concurrency, advance=generated,
                )  # fmt: skip
            seen.add(completions)
            with timer.stage("reference_scoring"):
                outcomes = await score_completions(
                    reference, completions, batch_size=config.batch_size,
                    workers=config.reference.max_concurrency, advance=scored,
                )  # fmt: skip
            with timer.stage("gap_and_ranking"):
                for completion, outcome in zip(completions, outcomes, strict=True):
                    record = measure(
                        completion, outcome.scored, outcome.failure,
                        shared_tokenizer=shared_tokenizer, window_bytes=config.window_bytes,
                    )  # fmt: skip
                    spool.add(annotate(record))
    return seen


@dataclass
class _Seen:
    """The first completion with tokens (the sentinel repeats it) and the served model of the
    first and the last answer that name one, in prefill order."""

    first: TargetCompletion | None = None
    first_served: ServedModel | None = None
    last_served: ServedModel | None = None

    def add(self, completions: Sequence[TargetCompletion]) -> None:
        served = [c.served for c in completions if c.served is not None]
        if served:
            self.first_served = self.first_served or served[0]
            self.last_served = served[-1]
        self.first = self.first or sentinel_candidate(completions)


async def _null(
    config: AuditConfig,
    hooks: Hooks,
    control: OpenAICompatibleProvider,
    reference: OpenAICompatibleProvider,
    prefills: Sequence[Prefill],
    path: Path,
) -> NullDistribution:
    """The audit's procedure with the null target on the first `null_prefills` prefills (the
    prefills come in a seeded random order, so these are a random sample); written to `path`."""
    framer = Framer.of(config)
    sample = prefills[: config.null_prefills]
    shared = await shared_tokenizer(control, reference)
    with hooks.stage("null target (control)", len(sample), "completion") as advance:
        completions = await generate_completions(
            control, [framer.frame(p) for p in sample], max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, seed=config.seed, batch_size=config.batch_size,
            workers=config.null_target.max_concurrency if config.null_target else 1, advance=advance,
        )  # fmt: skip
    outcomes = await score_completions(
        reference, completions, batch_size=config.batch_size, workers=config.reference.max_concurrency
    )
    controls = [
        measure(c, o.scored, o.failure, shared_tokenizer=shared, window_bytes=config.window_bytes)
        for c, o in zip(completions, outcomes, strict=True)
    ]
    path.write_text("".join(results_jsonl_line(r) + "\n" for r in controls), encoding="utf-8")
    return NullDistribution.of(controls, config.score)
