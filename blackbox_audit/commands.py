"""What each CLI command does, as functions of parsed arguments; output goes to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import anyio

class UsageError(ValueError):
    """Bad flags or config, found before any request."""


def resolve_api_key(flag_value: str | None, base_url: str, role: str = "") -> str | None:
    """The key from the flag, else `$BLACKBOX_AUDIT_<ROLE>_API_KEY` / `$BLACKBOX_AUDIT_API_KEY`,
    else `$OPENAI_API_KEY` but only for api.openai.com, so an OpenAI key never goes to another host."""
    if flag_value:
        return flag_value
    names = [f"BLACKBOX_AUDIT_{role.upper()}_API_KEY"] if role else []
    names.append("BLACKBOX_AUDIT_API_KEY")
    from providers.openai import is_openai_host

    if is_openai_host(base_url):
        names.append("OPENAI_API_KEY")
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def run_probe(args: argparse.Namespace) -> int:
    from providers.http import RetryPolicy
    from providers.dialects import parse_option_flags
    from providers.probe import probe
    from providers.registry import connect

    try:
        options = parse_option_flags(args.dialect_option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def go():
        # A probe reports what fails; it does not wait out a dead server with long backoffs.
        provider = await connect(
            args.base_url,
            args.model,
            dialect=args.dialect,
            options=options,
            api_key=resolve_api_key(args.api_key, args.base_url),
            retry=RetryPolicy(max_attempts=2, max_backoff_s=2.0),
        )
        try:
            return await probe(provider)
        finally:
            await provider.aclose()

    report = anyio.run(go)
    print(f"endpoint {report.base_url}  model {report.model}  dialect {report.dialect}  server {report.server_version or '?'}")
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {check.name:<{width}}  {mark}  {check.seconds:6.2f}s  {check.detail}")
    print(f"  {'as target':<{width}}  {'yes ' if report.can_target else 'NO  '}  (generation with logprobs)")
    print(f"  {'as reference':<{width}}  {'yes ' if report.can_reference else 'NO  '}  (tokenize + echo or prompt_logprobs)")
    wanted = {
        "target": report.can_target,
        "reference": report.can_reference,
        "both": report.can_target and report.can_reference,
        "any": report.can_target or report.can_reference,
    }[args.role]
    return 0 if wanted else 1


def run_cache(args: argparse.Namespace) -> int:
    from blackbox_audit.cache import ResponseCache

    with ResponseCache(Path(args.cache_dir) if args.cache_dir else None) as cache:
        if args.action == "clear":
            print(f"removed {cache.clear()} entries from {cache.directory}")
        else:
            stats = cache.stats()
            print(f"{stats.directory}: {stats.entries} entries, {stats.size_bytes / 1e6:.1f} MB")
    return 0


def run_local_vllm(args: argparse.Namespace) -> int:
    from blackbox_audit.local_vllm import main as local_main

    return local_main([args.action, *args.models])


async def _server_meta(base_url: str, model: str, dialect: str = "auto") -> dict[str, str]:
    """What a fixture says about where it was recorded."""
    from providers.registry import connect

    detected = await connect(base_url, model)
    await detected.aclose()
    return {
        "server": detected.dialect,
        "version": detected.server_version or "unknown",
        "model": model,
        "dialect": dialect if dialect != "auto" else detected.dialect,
        "base_url": base_url,
        "recorded": dt.date.today().isoformat(),
    }


def run_record_fixtures(args: argparse.Namespace) -> int:
    if args.action == "record-audit":
        return run_record_audit(args)
    from providers.dialects import parse_option_flags
    from providers.http import RecordingTransport
    from providers.recording import run_scenarios
    from providers.registry import connect

    out = Path(args.out)
    try:
        options = parse_option_flags(args.dialect_option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def go() -> int:
        meta = await _server_meta(args.base_url, args.model, args.dialect)
        provider = await connect(
            args.base_url,
            args.model,
            dialect=args.dialect,
            options=options,
            api_key=resolve_api_key(args.api_key, args.base_url),
            transport=RecordingTransport(out, meta),
        )
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
    from blackbox_audit.audit import audit_sync
    from blackbox_audit.config import AuditConfig, EndpointConfig
    from providers.http import RecordingTransport

    out = Path(args.out)
    config = AuditConfig(
        # The server tokenizes: a replay has the recorded /tokenize answers, not the served tokenizer.json.
        target=EndpointConfig(base_url=args.target_base_url, model=args.target_model, tokenizer="server"),
        reference=EndpointConfig(base_url=args.reference_base_url, model=args.reference_model, tokenizer="server"),
        framing=args.framing,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        use_cache=False,
        out=out / "outputs",
    )
    metas = {role: anyio.run(_server_meta, getattr(config, role).base_url, getattr(config, role).model) for role in ("target", "reference")}
    result = audit_sync(config, transports=lambda role: RecordingTransport(out / role, {**metas[role], "role": role}))
    (out / "audit.json").write_text(config.model_dump_json(indent=1, exclude={"out", "cache_dir"}) + "\n")
    print(f"recorded an audit of {len(result.results)} completions into {out}")
    return 0


def audit_config(args: argparse.Namespace):
    """Flags over the config file over defaults; every problem reported before any request."""
    from pydantic import ValidationError

    from blackbox_audit.config import AuditConfig

    flat = {
        "corpus": args.corpus,
        "text_field": args.text_field,
        "prefill_tokens": args.prefill_tokens,
        "limit": args.limit,
        "seed": args.seed,
        "framing": args.framing,
        "system_prompt": args.system_prompt,
        "user_prompt": args.user_prompt,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "score": args.score,
        "degeneracy_threshold": args.degeneracy_threshold,
        "batch_size": args.batch_size,
        "top_k": args.top_k,
        "out": args.out,
        "cache_dir": args.cache_dir,
    }
    if args.no_cache and args.cache_dir:
        raise UsageError("--no-cache conflicts with --cache-dir: give one of them")
    if args.no_degeneracy_filter and args.degeneracy_threshold is not None:
        raise UsageError("--no-degeneracy-filter conflicts with --degeneracy-threshold: give one of them")
    data: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"config file {path} does not exist")
        import json
        import tomllib

        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"config file {args.config} must hold a table of settings, not {type(data).__name__}")
    data.update({k: v for k, v in flat.items() if v is not None})
    if args.no_degeneracy_filter:
        data["degeneracy_threshold"] = None
    if args.no_cache:
        data["use_cache"] = False
    if args.cache_dir:
        data["use_cache"] = True
    for role in ("target", "reference"):
        if not isinstance(data.get(role) or {}, dict):
            raise UsageError(f"[{role}] in the config file must be a table (base_url, model, dialect, ...)")
        endpoint = dict(data.get(role) or {})
        for name in ("base_url", "model", "dialect", "api_key", "concurrency", "tokenizer"):
            value = getattr(args, f"{role}_{name}")
            if value is not None:
                endpoint["max_concurrency" if name == "concurrency" else name] = value
        if getattr(args, f"{role}_dialect_option"):
            from providers.dialects import parse_option_flags

            try:
                endpoint["dialect_options"] = {**endpoint.get("dialect_options", {}), **parse_option_flags(getattr(args, f"{role}_dialect_option"))}
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if "base_url" not in endpoint or "model" not in endpoint:
            raise UsageError(f"the {role} needs --{role}-base-url and --{role}-model (or a [{role}] table in --config)")
        if not endpoint.get("api_key"):
            endpoint["api_key"] = resolve_api_key(None, str(endpoint["base_url"]), role)
        data[role] = endpoint
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from None


def run_audit(args: argparse.Namespace) -> int:
    from blackbox_audit.audit import audit_sync, estimate
    from blackbox_audit.corpus import CorpusError
    from blackbox_audit.report import render_summary_table

    config = audit_config(args)
    try:
        if args.dry_run:
            print(estimate(config).table())
            return 0
        result = audit_sync(config, progress=not args.quiet)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    print(render_summary_table(result.results, top_k=10))
    counts = result.manifest["counts"]
    print(
        f"{counts['prefills']} completions, alignment {counts['alignment']}; "
        f"wrote results.jsonl, report.md, report.html, manifest.json to {config.out}"
    )
    return 0
