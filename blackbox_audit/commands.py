"""What each CLI command does, as functions of parsed arguments; output goes to stdout, and
`failure` turns any exception a command may raise into its exit code and one line."""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
from pydantic import SecretStr, ValidationError

from blackbox_audit.advice import budget_line, error_line
from blackbox_audit.cache import CacheError, ResponseCache, default_cache_dir, remove_database
from blackbox_audit.config import ConfigError, EndpointConfig, load_config, resolve_api_key
from blackbox_audit.corpus import CorpusError
from blackbox_audit.evaluate import EvalInputError, run_eval
from blackbox_audit.inquiry import InquiryError
from blackbox_audit.outputs import OutputError
from blackbox_audit.prefills import PrefillError
from providers.dialects import parse_option_flags
from providers.errors import ProviderError

BUDGET_REACHED = 3
"""The exit status of an audit stopped by --max-target-tokens: its outputs are complete for the
prefills it covered, but not for the audit asked for."""


class UsageError(ValueError):
    """Bad flags or input, found before any request."""


def failure(exc: BaseException) -> tuple[int | None, str]:
    """(exit code, one line) for an exception a command raised; (None, "") for a bug, which
    keeps its traceback."""
    if isinstance(exc, UsageError | ConfigError | CorpusError | PrefillError | EvalInputError | InquiryError):
        return 2, str(exc)
    if isinstance(exc, OutputError | CacheError):
        return (2 if exc.usage else 1), str(exc)
    if isinstance(exc, ProviderError):
        return 1, error_line(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return 1, f"{exc.strerror or exc}{where}"
    return None, ""


def _endpoint(args: argparse.Namespace) -> EndpointConfig:
    """The probe's and recorder's endpoint, validated like an audit's (a URL's userinfo set apart)."""
    try:
        options = parse_option_flags(args.dialect_options)
    except ValueError as exc:
        raise UsageError(f"--dialect-option: {exc}") from None
    try:
        endpoint = EndpointConfig(
            base_url=args.base_url, model=args.model, dialect=args.dialect or "auto", dialect_options=options
        )
    except ValidationError as exc:
        raise UsageError(
            "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        ) from None
    key = resolve_api_key(args.api_key, endpoint.base_url)
    return endpoint.model_copy(update={"api_key": SecretStr(key) if key else None})


def run_probe(args: argparse.Namespace) -> int:
    from blackbox_audit.endpoints import connect_endpoint
    from providers.http import RetryPolicy
    from providers.probe import probe

    if not args.base_url or not args.model:
        raise UsageError("probe needs --base-url and --model")
    endpoint = _endpoint(args)

    async def go():
        # A probe reports what fails; it does not wait out a dead server with long backoffs.
        provider = await connect_endpoint(endpoint, retry=RetryPolicy(max_attempts=2, max_backoff_s=2.0))
        try:
            return await probe(provider)
        finally:
            await provider.aclose()

    report = anyio.run(go)
    print(
        f"endpoint {report.base_url}  model {report.model}  dialect {report.dialect}  server {report.server_version or '?'}"
    )
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {check.name:<{width}}  {mark}  {check.seconds:6.2f}s  {check.detail}")
    print(f"  {'as target':<{width}}  {'yes ' if report.can_target else 'NO  '}  (generation with logprobs)")
    print(
        f"  {'as reference':<{width}}  {'yes ' if report.can_reference else 'NO  '}  (tokenize + echo or prompt_logprobs)"
    )
    wanted = {
        "target": report.can_target,
        "reference": report.can_reference,
        "both": report.can_target and report.can_reference,
        "any": report.can_target or report.can_reference,
    }[args.role]
    return 0 if wanted else 1


def run_cache(args: argparse.Namespace) -> int:
    directory = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if not directory.exists():
        if args.cache_dir:
            raise UsageError(f"no cache at {directory} (nothing was created): check --cache-dir")
        print(f"{directory}: no cache yet, 0 entries")
        return 0
    if args.action == "clear":
        try:
            with ResponseCache(directory) as cache:
                print(f"removed {cache.clear()} entries from {directory}")
        except CacheError:
            removed = remove_database(directory)
            print(f"removed an unreadable cache from {directory} ({', '.join(p.name for p in removed) or 'no files'})")
        return 0
    try:
        with ResponseCache(directory) as cache:
            stats = cache.stats()
    except sqlite3.DatabaseError as exc:
        raise CacheError(
            f"the cache in {directory} is unreadable ({exc}): `blackbox-audit cache clear` removes it"
        ) from None
    print(f"{stats.directory}: {stats.entries} entries, {stats.size_bytes / 1e6:.1f} MB")
    return 0


def run_local_vllm(args: argparse.Namespace) -> int:
    from blackbox_audit.local_vllm.__main__ import main as local_main

    return local_main([args.action, *args.models])


def run_record_fixtures(args: argparse.Namespace) -> int:
    if args.action == "record-audit":
        return run_record_audit(args)
    from blackbox_audit.endpoints import connect_endpoint, server_meta
    from providers.http import RecordingTransport
    from providers.recording import run_scenarios

    out = Path(args.out)
    endpoint = _endpoint(args)

    async def go() -> int:
        meta = await server_meta(endpoint)
        provider = await connect_endpoint(endpoint, transport=RecordingTransport(out, meta))
        try:
            return await run_scenarios(provider)
        finally:
            await provider.aclose()

    count = anyio.run(go)
    print(f"recorded {count} scenarios into {out}")
    return 0


def run_record_audit(args: argparse.Namespace) -> int:
    """A small real audit through recording transports: its exchanges, config and results
    become the replay test of the whole pipeline (and the evaluator's recorded input)."""
    from blackbox_audit.endpoints import recording, replayable
    from blackbox_audit.pipeline import audit_sync

    out = Path(args.out)
    config = replayable(
        load_config(
            overrides={
                "target": {"base_url": args.target__base_url, "model": args.target__model},
                "reference": {"base_url": args.reference__base_url, "model": args.reference__model},
                "framing": args.framing,
                "limit": args.limit,
                "max_new_tokens": args.max_new_tokens,
                "out": out / "outputs",
            }
        )
    )
    result = audit_sync(config, transports=recording(out, config))
    (out / "audit.json").write_text(config.model_dump_json(indent=1, exclude={"out", "cache_dir"}) + "\n")
    print(f"recorded an audit of {len(result.results)} completions into {out}")
    return 0


def audit_config(args: argparse.Namespace):
    """Flags over the config file over defaults; every problem reported before any request."""
    from blackbox_audit.flags import overrides_from

    overrides, names = overrides_from(args, args.audit_flags)
    return load_config(args.config, overrides, names=names)


def run_audit(args: argparse.Namespace) -> int:
    from blackbox_audit.estimate import estimate
    from blackbox_audit.pipeline import audit_sync
    from blackbox_audit.report import render_summary_table
    from blackbox_audit.terminal import TerminalHooks

    config = audit_config(args)
    if args.dry_run:
        print(estimate(config).table())
        return 0
    result = audit_sync(config, hooks=TerminalHooks(progress=not args.quiet))
    print(render_summary_table(result.results, config.score, top_k=10))
    counts = result.manifest["counts"]
    print(
        f"{counts['prefills']} completions, alignment {counts['alignment']}; "
        f"wrote results.jsonl, report.md, report.html, manifest.json to {config.out}"
    )
    for line in result.model_check.warnings():
        print(f"warning: {line}")
    if result.budget is not None and result.budget.reached:
        print(budget_line(result.budget, use_cache=config.use_cache), file=sys.stderr)
        return BUDGET_REACHED
    return 0


def _inquiry(args: argparse.Namespace):
    """The audit folder named, its config with the flags' endpoint overrides, and the transports
    (--record / --replay; then the servers tokenize and the cache stays out, as in a recording)."""
    from blackbox_audit.endpoints import recording, replayable, replaying
    from blackbox_audit.flags import overrides_from
    from blackbox_audit.inquiry import AuditFolder

    overrides, _ = overrides_from(args, args.endpoint_flags)
    folder = AuditFolder.open(args.audit_dir, overrides)
    if not (args.record or args.replay):
        return folder, lambda role: None
    folder = dataclasses.replace(folder, config=replayable(folder.config))
    if args.replay:
        if not all((Path(args.replay) / role).is_dir() for role in ("target", "reference")):
            raise UsageError(f"--replay {args.replay} holds no recorded target/ and reference/ exchanges")
        return folder, replaying(Path(args.replay))
    return folder, recording(Path(args.record), folder.config)


def run_hypotheses(args: argparse.Namespace) -> int:
    from blackbox_audit.hypotheses import load_statements, rank_hypotheses
    from blackbox_audit.inquiry import Inquiry
    from blackbox_audit.terminal import TerminalHooks

    hypotheses = load_statements(args.statements)
    folder, transports = _inquiry(args)

    async def go():
        async with Inquiry(folder.config, transports=transports, hooks=TerminalHooks(progress=False)) as inquiry:
            return await rank_hypotheses(inquiry, hypotheses)

    ranking = anyio.run(go)
    print(ranking.model_dump_json(indent=2) if args.json else ranking.table())
    return 0


def run_mcp(args: argparse.Namespace) -> int:
    from blackbox_audit.mcp_server import serve

    folder, transports = _inquiry(args)
    serve(folder, transports)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from blackbox_audit.demo import run_demo as demo

    print(demo(Path(args.out)))
    return 0


def run_report(args: argparse.Namespace) -> int:
    """report.html rewritten in place from results.jsonl and manifest.json (atomically)."""
    from blackbox_audit.evaluate import load_organism, load_results
    from blackbox_audit.inquiry import AuditFolder
    from blackbox_audit.outputs import report_title
    from blackbox_audit.report_html import RunInfo, iter_html
    from providers.atomic import atomic_write

    folder = AuditFolder.open(args.audit_dir)
    spec = load_organism(args.organism) if args.organism else None
    background = [r.completion for r in load_results(args.background)] if args.background else None
    top_k = args.top_k or folder.config.top_k
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    path = folder.path / "report.html"
    parts = iter_html(folder.records, title=report_title(folder.manifest), run=RunInfo.from_manifest(folder.manifest),
                      top_k=top_k, spec=spec, background=background)  # fmt: skip
    atomic_write(path, (part.encode() for part in parts))
    print(f"wrote {path}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "probe": run_probe,
    "cache": run_cache,
    "local-vllm": run_local_vllm,
    "fixtures": run_record_fixtures,
    "audit": run_audit,
    "eval": run_eval,
    "hypotheses": run_hypotheses,
    "mcp": run_mcp,
    "demo": run_demo,
    "report": run_report,
}
