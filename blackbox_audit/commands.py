"""What each CLI command does, as functions of parsed arguments; output goes to stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import anyio

API_KEY_ENVS = ("BLACKBOX_AUDIT_API_KEY", "OPENAI_API_KEY")


def resolve_api_key(flag_value: str | None) -> str | None:
    """The key from the flag, else from the usual environment variables; never persisted."""
    if flag_value:
        return flag_value
    return next((os.environ[name] for name in API_KEY_ENVS if os.environ.get(name)), None)


def run_probe(args: argparse.Namespace) -> int:
    from providers.probe import probe
    from providers.registry import connect

    async def go():
        provider = await connect(args.base_url, args.model, dialect=args.dialect, api_key=resolve_api_key(args.api_key))
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


def run_record_fixtures(args: argparse.Namespace) -> int:
    from providers.http import RecordingTransport
    from providers.recording import run_scenarios
    from providers.registry import connect

    out = Path(args.out)

    async def go() -> int:
        detected = await connect(args.base_url, args.model)
        await detected.aclose()
        meta = {
            "server": detected.dialect,
            "version": detected.server_version or "unknown",
            "model": args.model,
            "dialect": args.dialect if args.dialect != "auto" else detected.dialect,
            "base_url": args.base_url,
            "recorded": dt.date.today().isoformat(),
        }
        provider = await connect(
            args.base_url,
            args.model,
            dialect=args.dialect,
            api_key=resolve_api_key(args.api_key),
            transport=RecordingTransport(out, meta),
        )
        try:
            return await run_scenarios(provider)
        finally:
            await provider.aclose()

    count = anyio.run(go)
    print(f"recorded {count} scenarios into {out}")
    return 0
