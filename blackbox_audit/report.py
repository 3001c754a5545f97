"""Readable views of ranked results: results.jsonl, Markdown, a stdout table (the HTML page is
`report_html`).

Renderers are pure (identical input gives byte-identical output, so reports can be diffed
and cached); `outputs.write_reports` and the spool write them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from blackbox_audit.records import CompletionResult

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def results_jsonl_line(result: CompletionResult) -> str:
    """One line of results.jsonl, without its newline; NaN or inf fail here rather than in a reader."""
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, allow_nan=False)


def render_markdown(
    ranked: Sequence[CompletionResult], *, title: str, summary: Mapping[str, str], top_k: int = 20
) -> str:
    top = top_of(ranked, top_k)
    lines = [f"# {_md_escape(title)}", ""]
    lines += [f"- **{_md_escape(key)}**: {_md_escape(value)}" for key, value in summary.items()]
    lines += ["", _counts_line(ranked, len(top)), ""]
    lines += [
        "| rank | ppl_diff | logppl_diff | bpb_diff | degeneracy | text | alignment |",
        "|---:|---:|---:|---:|---:|---|---|",
    ]
    for result in top:
        assert result.gaps is not None
        text = _md_bold(result.prefill) + _md_escape(result.completion)
        lines.append(
            f"| {result.rank} | {result.gaps.ppl_diff:.2f} | {result.gaps.logppl_diff:.3f} | "
            f"{result.gaps.bpb_diff:.3f} | {result.degeneracy:.2f} | {text} | {_alignment_label(result)} |"
        )
    return "\n".join(lines) + "\n"


def render_summary_table(ranked: Sequence[CompletionResult], top_k: int = 10, width: int = 100) -> str:
    """For stdout, prefill in brackets; control characters are replaced so a completion cannot drive the terminal."""
    header = f"{'rank':>4}  {'logppl_diff':>11}  {'ppl_diff':>11}  {'bpb_diff':>9}  "
    text_width = max(10, width - len(header))
    lines = [header + "text"]
    for result in top_of(ranked, top_k):
        assert result.gaps is not None
        text = _truncate(_visible(f"[{result.prefill}]{result.completion}"), text_width)
        lines.append(
            f"{result.rank:>4}  {result.gaps.logppl_diff:>11.3f}  {result.gaps.ppl_diff:>11.4g}  "
            f"{result.gaps.bpb_diff:>9.3f}  {text}"
        )
    return "\n".join(lines) + "\n"


def top_of(ranked: Sequence[CompletionResult], top_k: int) -> list[CompletionResult]:
    """The first `top_k` ranked records. Renderers take records in rank order, ranked ones
    first, as `ranking.rank` returns them and results.jsonl holds them."""
    top: list[CompletionResult] = []
    for result in ranked:
        if result.rank is None or len(top) == top_k:
            break
        top.append(result)
    return top


def n_ranked(ranked: Sequence[CompletionResult]) -> int:
    """Ranked records come first, so the first unranked one is found by bisection."""
    low, high = 0, len(ranked)
    while low < high:
        middle = (low + high) // 2
        if ranked[middle].rank is None:
            high = middle
        else:
            low = middle + 1
    return low


def _counts_line(ranked: Sequence[CompletionResult], n_shown: int) -> str:
    ranked_count = n_ranked(ranked)
    return (
        f"Top {n_shown} of {ranked_count} ranked records ({len(ranked)} in all; "
        f"{len(ranked) - ranked_count} empty or unaligned, unranked)."
    )


def _alignment_label(result: CompletionResult) -> str:
    if result.alignment == "widened":
        return f"widened (+{result.reference_extra_chars} context chars)"
    return result.alignment


def _md_escape(text: str) -> str:
    escaped = _MD_SPECIAL.sub(r"\\\1", text.replace("\r\n", "\n"))
    return escaped.replace("\r", "<br>").replace("\n", "<br>")


def _md_bold(text: str) -> str:
    """Bold the core only: `** word**` is not bold in CommonMark."""
    core = text.strip()
    if not core:
        return _md_escape(text)
    start = text.index(core)
    return f"{_md_escape(text[:start])}**{_md_escape(core)}**{_md_escape(text[start + len(core) :])}"


def _visible(text: str) -> str:
    return "".join(
        "⏎" if char == "\n" else " " if char == "\t" else char if char.isprintable() else "\ufffd" for char in text
    )


def _truncate(text: str, n_chars: int) -> str:
    return text if len(text) <= n_chars else text[: n_chars - 1] + "…"
