"""The benchmark's one table, its markdown page, and the profile summary."""

from __future__ import annotations

import math
import pstats
from dataclasses import dataclass
from pathlib import Path

BEGIN = "<!-- bench:begin (written by python -m bench; edit outside these markers) -->"
END = "<!-- bench:end -->"


@dataclass
class Row:
    case: str
    run: str
    wall_s: float | None
    http_requests: int | None
    throughput: str
    versus: str
    target: str
    notes: str


HEADER = ("case", "run", "wall s", "HTTP requests", "throughput", "vs floor / per completion", "target: met?", "notes")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = (row.case, row.run, row.wall_s, row.http_requests, row.throughput, row.versus, row.target, row.notes)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render_markdown(*, table, notes, command, started_at, total_s, facts_start, facts_end, versions, args) -> str:
    facts = (
        f"{facts_start['cores']} cores ({facts_start['cpu_model']}), {facts_start['ram_gib']} GiB RAM"
        f" ({facts_start['mem_available_gib']} GiB available at the start), kernel {facts_start['kernel']};"
        f" load average (1/5/15 min) {facts_start['load_average']} at the start, {facts_end['load_average']} at the end"
    )
    version_line = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [
        BEGIN,
        "",
        f"Run {started_at}, {total_s / 60:.1f} min in all:",
        "",
        "```",
        command,
        "```",
        "",
        f"- machine: {facts}",
        f"- versions: {version_line}",
        f"- sizes: scoring job {args.pairs} pairs; audit {args.prefills} prefills x {args.max_new_tokens} new tokens"
        f" ({args.target} target, {args.reference} reference); client overhead {', '.join(f'{n:,}' for n in args.overhead_sizes)}"
        f" completions; batch {args.batch_size}, pool {args.workers}",
        "",
        table,
        "",
        *[f"- {note}" for note in notes],
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_between_markers(path: Path, block: str) -> None:
    """Replace the generated block, keeping hand-written text around it (or create the file)."""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block.rstrip("\n") + tail, encoding="utf-8")
            return
    path.write_text("# Benchmarks\n\n" + block, encoding="utf-8")


_GROUPS = (
    ("HTTP client (httpx, httpcore, h11)", ("/httpx/", "/httpcore/", "/h11/")),
    ("event loop and anyio", ("/asyncio/", "/anyio/", "/sniffio/", "{method 'run' of '_contextvars")),
    ("json encode/decode (orjson, stdlib)", ("/json/", "_json", "orjson")),
    ("tokenizers (in process)", ("tokenizers.",)),
    ("pydantic records", ("/pydantic", "pydantic_core")),
    ("tenacity (retry wrapper)", ("/tenacity/",)),
    ("providers/ code itself", ("/providers/",)),
    ("blackbox_audit/ code itself", ("/blackbox_audit/",)),
)


def profile_summary(prof_path: Path, n: int) -> str:
    stats = pstats.Stats(str(prof_path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    groups = {name: 0.0 for name, _ in _GROUPS}
    for (filename, _, funcname), (_, _, tt, _, _) in raw.items():
        where = f"{filename} {funcname}"
        for name, needles in _GROUPS:
            if any(needle in where for needle in needles):
                groups[name] += tt
                break
    cumulative = {}
    for (filename, _, funcname), (_, _, _, ct, _) in raw.items():
        if filename.endswith(("providers/openai_compatible.py", "providers/http.py", "providers/wire.py")):
            cumulative[funcname] = max(cumulative.get(funcname, 0.0), ct)
    picks = ["_send", "tokenize", "detokenize", "_score_prepared", "_prepare", "token_logprobs"]
    shares = ", ".join(f"`{f}` {100 * cumulative[f] / total:.0f}%" for f in picks if f in cumulative)
    groups["other (sockets, regex, builtins)"] = total - sum(groups.values())
    parts = ", ".join(
        f"{name} {100 * t / total:.0f}%" for name, t in sorted(groups.items(), key=lambda kv: -kv[1]) if t > 0
    )
    return (
        f"Profile (cProfile on the CPU-time clock, stream variant, {n:,} completions, {total:.1f} s of CPU under the profiler):"
        f" self time by stack: {parts}. Cumulative time in the provider: {shares}."
    )
