"""Readable views of ranked results: results.jsonl, Markdown, a stdout table (the HTML page is
`report_html`).

Renderers are pure (identical input gives byte-identical output, so reports can be diffed
and cached); `outputs.write_reports` and the spool write them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from blackbox_audit.ranking import DEFAULT_SCORE, RANK_AVERAGE_PARTS, gap_of
from blackbox_audit.records import CompletionResult, GapName, ScoreName

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def results_jsonl_line(result: CompletionResult) -> str:
    """One line of results.jsonl, without its newline; NaN or inf fail here rather than in a reader."""
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, allow_nan=False)


def render_markdown(
    ranked: Sequence[CompletionResult],
    *,
    title: str,
    summary: Mapping[str, str],
    score: ScoreName = DEFAULT_SCORE,
    top_k: int = 20,
) -> str:
    """The prefill in italics, the best window of the ranking's score (`best_window`) in bold."""
    top = top_of(ranked, top_k)
    columns = _score_columns(score)
    lines = [f"# {_md_escape(title)}", ""]
    lines += [f"- **{_md_escape(key)}**: {_md_escape(value)}" for key, value in summary.items()]
    lines += ["", _counts_line(ranked, len(top)), ""]
    lines += [
        "| rank | " + " | ".join(columns) + " | degeneracy | text | alignment |",
        "|---:|" + "---:|" * len(columns) + "---:|---|---|",
    ]
    for result in top:
        assert result.gaps is not None
        values = " | ".join(f"{getattr(result.gaps, name):.3f}" for name in columns)
        text = _md_emphasis(result.prefill, "_") + _md_with_window(result.completion, best_window(result, score))
        lines.append(f"| {result.rank} | {values} | {result.degeneracy:.2f} | {text} | {_alignment_label(result)} |")
    return "\n".join(lines) + "\n"


def render_summary_table(
    ranked: Sequence[CompletionResult], score: ScoreName = DEFAULT_SCORE, top_k: int = 10, width: int = 100
) -> str:
    """For stdout, prefill in brackets; control characters are replaced so a completion cannot drive the terminal."""
    columns = _score_columns(score)
    header = f"{'rank':>4}  " + "".join(f"{name:>{max(9, len(name))}}  " for name in columns)
    text_width = max(10, width - len(header))
    lines = [header + "text"]
    for result in top_of(ranked, top_k):
        assert result.gaps is not None
        text = _truncate(_visible(f"[{result.prefill}]{result.completion}"), text_width)
        values = "".join(f"{getattr(result.gaps, name):>{max(9, len(name))}.4g}  " for name in columns)
        lines.append(f"{result.rank:>4}  {values}{text}")
    return "\n".join(lines) + "\n"


def _score_columns(score: ScoreName) -> list[GapName]:
    """The ranking's numbers first (the parts of rank_average), then the paper's two whole-completion ones."""
    first: list[GapName] = list(RANK_AVERAGE_PARTS) if score == "rank_average" else [gap_of(score)]
    return first + [name for name in ("logppl_diff", "ppl_diff") if name not in first]


def best_window(result: CompletionResult, score: ScoreName) -> tuple[int, int] | None:
    """Character offsets [start, end) in the completion of the window to mark: window_gap's own,
    else the collapsed one (repeats counted once); None without a profile."""
    if result.profile is None:
        return None
    start, end = result.profile.window if score == "window_gap" else result.profile.collapsed_window
    data = result.completion.encode("utf-8")
    # Byte offsets may fall inside a character: widen to whole characters.
    return len(data[:start].decode("utf-8", "ignore")), len(data[:end].decode("utf-8", "replace"))


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


def _md_emphasis(text: str, marker: str) -> str:
    """Emphasise each line's core only: `** word**` is not bold in CommonMark, nor can
    emphasis span a line break (a `<br>` in a table cell)."""
    return "<br>".join(_md_emphasis_line(line, marker) for line in re.split(r"\r\n|\r|\n", text))


def _md_emphasis_line(text: str, marker: str) -> str:
    core = text.strip()
    if not core:
        return _md_escape(text)
    start = text.index(core)
    return f"{_md_escape(text[:start])}{marker}{_md_escape(core)}{marker}{_md_escape(text[start + len(core) :])}"


def _md_with_window(completion: str, window: tuple[int, int] | None) -> str:
    if window is None:
        return _md_escape(completion)
    start, end = window
    return _md_escape(completion[:start]) + _md_emphasis(completion[start:end], "**") + _md_escape(completion[end:])


def _visible(text: str) -> str:
    return "".join(
        "⏎" if char == "\n" else " " if char == "\t" else char if char.isprintable() else "\ufffd" for char in text
    )


def _truncate(text: str, n_chars: int) -> str:
    return text if len(text) <= n_chars else text[: n_chars - 1] + "…"
