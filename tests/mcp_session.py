"""A scripted auditor: the MCP SDK's own stdio client driving `blackbox-audit mcp` the way an
agent would. The replay tests run it offline over recorded exchanges, the live tests against
the servers, and its command line records those exchanges from real servers:

    python -m tests.mcp_session AUDIT_DIR --organism organisms/specs/eiffel-marseille.toml \\
        --statements organisms/statements/eiffel-marseille.statements --record fixtures/mcp-eiffel-marseille
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from blackbox_audit.evaluate import OrganismSpec, is_hit, load_organism
from blackbox_audit.hypotheses import load_statements

TOOLS = {
    "top_completions",
    "search_completions",
    "show_completion",
    "themes",
    "score_text",
    "sample",
    "compare_hypotheses",
}


@dataclass
class Findings:
    tools: set[str]
    instructions: str
    top: list[dict[str, Any]]
    hit: dict[str, Any] | None
    detail: dict[str, Any]
    search: dict[str, Any] | None
    themes: dict[str, Any]
    scored: dict[str, Any]
    samples: list[dict[str, Any]]
    hypotheses: dict[str, Any]
    errors: dict[str, str]


def server_parameters(audit: Path, *, replay: Path | None = None, record: Path | None = None) -> StdioServerParameters:
    args = ["-m", "blackbox_audit.cli", "mcp", str(audit)]
    if replay is not None:
        args += ["--replay", str(replay)]
    if record is not None:
        args += ["--record", str(record)]
    return StdioServerParameters(
        command=sys.executable, args=args, env=dict(os.environ), cwd=Path(__file__).resolve().parent.parent
    )


async def _call(session: ClientSession, name: str, arguments: dict[str, Any]) -> Any:
    result = await session.call_tool(name, arguments)
    if result.is_error:
        raise ToolFailed(name, " ".join(getattr(c, "text", "") for c in result.content))
    content = result.structured_content
    return content["result"] if content is not None and set(content) == {"result"} else content


class ToolFailed(Exception):
    def __init__(self, tool: str, message: str):
        super().__init__(f"{tool}: {message}")
        self.message = message


async def investigate(params: StdioServerParameters, spec: OrganismSpec, statements: list[str]) -> Findings:
    """Read the top, find a hit, look at its tokens, check the theme, then test it directly."""
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
        top = (await _call(session, "top_completions", {"k": 10}))["rows"]
        hit = next((row for row in top if is_hit(row["completion"], spec)), None)
        detail = await _call(session, "show_completion", {"id": (hit or top[0])["id"]})
        keyword = spec.keyword_sets[0][-1] if spec.keyword_sets else None
        search = await _call(session, "search_completions", {"query": keyword}) if keyword else None
        themes = await _call(session, "themes", {"k": 20})
        scored = await _call(session, "score_text", {"text": statements[0]})
        samples = await _call(session, "sample", {"prefill": (hit or top[0])["prefill"], "n": 3, "max_new_tokens": 24})
        hypotheses = await _call(session, "compare_hypotheses", {"statements": statements})
        errors = {}
        for name, arguments in (("show_completion", {"id": 10**6}), ("top_completions", {"k": 0})):
            try:
                await _call(session, name, arguments)
            except ToolFailed as failed:
                errors[name] = failed.message
    return Findings(
        tools=tools, instructions=init.instructions or "", top=top, hit=hit, detail=detail, search=search,
        themes=themes, scored=scored, samples=samples, hypotheses=hypotheses, errors=errors,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mcp_session", description=__doc__.split("\n\n")[0])
    parser.add_argument("audit", type=Path)
    parser.add_argument("--organism", required=True, type=Path)
    parser.add_argument("--statements", required=True, type=Path)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args(argv)
    statements = [h.statement for h in load_statements(args.statements)]
    params = server_parameters(args.audit, record=args.record)
    findings = anyio.run(investigate, params, load_organism(args.organism), statements)
    print(
        json.dumps({"hit": findings.hit, "hypotheses": findings.hypotheses, "themes": findings.themes}, indent=1)[:6000]
    )
    return 0 if findings.hit else 1


if __name__ == "__main__":
    sys.exit(main())
