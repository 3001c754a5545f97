"""Readable views of ranked results: results.jsonl, Markdown, one self-contained HTML page, a stdout table.

Renderers are pure (identical input gives byte-identical output, so reports can be diffed
and cached); `audit.write_outputs` and the spool write them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import groupby

from blackbox_audit.gap import char_gaps
from blackbox_audit.records import CompletionResult

SHADE_LEVELS = 8
SHADE_FULL_NATS_PER_CHAR = 2.0
"""A per-character gap this large gets the darkest shade; a revealing token's gap of 5-10 nats
spread over 3-5 characters lands there, ordinary tokenizer noise stays pale."""

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def results_jsonl_line(result: CompletionResult) -> str:
    """One line of results.jsonl, without its newline; NaN or inf fail here rather than in a reader."""
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, allow_nan=False)


def render_markdown(
    ranked: Sequence[CompletionResult], *, title: str, summary: Mapping[str, str], top_k: int = 20
) -> str:
    top = _top(ranked, top_k)
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


def render_html(ranked: Sequence[CompletionResult], *, title: str, summary: Mapping[str, str], top_k: int = 50) -> str:
    """One file to mail or archive: inline CSS, no scripts, no external resources.

    Top-k cards shade each completion character by its gap (red: likelier under the target),
    and link to the record's row in the table of all records below.
    """
    return "".join(iter_html(ranked, title=title, summary=summary, top_k=top_k))


def iter_html(
    ranked: Sequence[CompletionResult], *, title: str, summary: Mapping[str, str], top_k: int = 50
) -> Iterator[str]:
    """`render_html` line by line, reading the records once for the table: a large audit's
    page is written without ever being held in memory."""
    top = _top(ranked, top_k)
    esc = html.escape
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_css()}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        '<dl class="summary">',
        *(f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>" for key, value in summary.items()),
        "</dl>",
        f"<p>{esc(_counts_line(ranked, len(top)))}</p>",
        '<p class="legend">Completion shading, per character: <span class="p8">likelier under the target</span> '
        f'<span class="n8">likelier under the reference</span> (darkest at {SHADE_FULL_NATS_PER_CHAR:g} nats per '
        "character); <mark>prefill</mark> highlighted.</p>",
        f"<h2>Top {len(top)}</h2>",
    ]
    yield from (line + "\n" for line in head)
    card_anchors = _Anchors()  # the top records lead the order, so their anchors are the first ones
    for result in top:
        yield _html_card(result, card_anchors.next(result)) + "\n"
    table = [
        "<h2>All records</h2>",
        '<table class="all">',
        "<thead><tr><th>rank</th><th>ppl_diff</th><th>logppl_diff</th><th>bpb_diff</th><th>degeneracy</th>"
        "<th>alignment</th><th>source</th><th>text</th><th>details</th></tr></thead>",
        "<tbody>",
    ]
    yield from (line + "\n" for line in table)
    row_anchors = _Anchors()
    for result in ranked:
        yield _html_row(result, row_anchors.next(result)) + "\n"
    yield from (line + "\n" for line in ("</tbody>", "</table>", "</body>", "</html>"))


def render_summary_table(ranked: Sequence[CompletionResult], top_k: int = 10, width: int = 100) -> str:
    """For stdout, prefill in brackets; control characters are replaced so a completion cannot drive the terminal."""
    header = f"{'rank':>4}  {'logppl_diff':>11}  {'ppl_diff':>11}  {'bpb_diff':>9}  "
    text_width = max(10, width - len(header))
    lines = [header + "text"]
    for result in _top(ranked, top_k):
        assert result.gaps is not None
        text = _truncate(_visible(f"[{result.prefill}]{result.completion}"), text_width)
        lines.append(
            f"{result.rank:>4}  {result.gaps.logppl_diff:>11.3f}  {result.gaps.ppl_diff:>11.4g}  "
            f"{result.gaps.bpb_diff:>9.3f}  {text}"
        )
    return "\n".join(lines) + "\n"


def _top(ranked: Sequence[CompletionResult], top_k: int) -> list[CompletionResult]:
    """The first `top_k` ranked records. Renderers take records in rank order, ranked ones
    first, as `ranking.rank` returns them and results.jsonl holds them."""
    top: list[CompletionResult] = []
    for result in ranked:
        if result.rank is None or len(top) == top_k:
            break
        top.append(result)
    return top


def _n_ranked(ranked: Sequence[CompletionResult]) -> int:
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
    n_ranked = _n_ranked(ranked)
    return (
        f"Top {n_shown} of {n_ranked} ranked records ({len(ranked)} in all; "
        f"{len(ranked) - n_ranked} empty or unaligned, unranked)."
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


class _Anchors:
    """Fragment ids that stay put across runs (framing + prefill_id), made unique in record order."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def next(self, result: CompletionResult) -> str:
        base = "rec-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{result.framing}-{result.prefill_id}")
        anchor, n = base, 1
        while anchor in self.used:
            n += 1
            anchor = f"{base}-{n}"
        self.used.add(anchor)
        return anchor


def _css() -> str:
    shades = "".join(
        f".p{level}{{background:rgba(220,38,38,{0.6 * level / SHADE_LEVELS:.3f})}}"
        f".n{level}{{background:rgba(37,99,235,{0.6 * level / SHADE_LEVELS:.3f})}}"
        for level in range(1, SHADE_LEVELS + 1)
    )
    return (
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;color:#222}"
        ".summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}.summary dt{font-weight:bold}"
        ".text{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}"
        "mark{background:#fde68a}"
        ".card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0}"
        ".card h3{margin:.2em 0;font-size:1em}.scores,.meta{font-size:.85em;color:#555}"
        "table.all{border-collapse:collapse;font-size:.85em}"
        "table.all td,table.all th{border:1px solid #ddd;padding:2px 6px;vertical-align:top}"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}tr:target{outline:2px solid #f59e0b}" + shades
    )


def _scores_html(result: CompletionResult) -> str:
    if result.gaps is None:
        return "no gap"
    return (
        f"logppl_diff {result.gaps.logppl_diff:.3f} · ppl_diff {result.gaps.ppl_diff:.2f} · "
        f"bpb_diff {result.gaps.bpb_diff:.3f} · degeneracy {result.degeneracy:.2f}"
    )


def _html_card(result: CompletionResult, anchor: str) -> str:
    esc = html.escape
    per_char = char_gaps(
        result.completion,
        result.target_tokens,
        result.reference_tokens,
        reference_extra_chars=result.reference_extra_chars,
    )
    completion = esc(result.completion) if per_char is None else _shaded(result.completion, per_char)
    meta = [result.source, result.framing, f"finish {result.finish_reason}", _alignment_label(result)]
    if result.alignment_detail:
        meta.append(result.alignment_detail)
    if per_char is None:
        meta.append("no shading: token texts do not spell the completion")
    return (
        f'<section class="card"><h3><a href="#{anchor}">#{result.rank}</a> '
        f'<span class="scores">{_scores_html(result)}</span></h3>'
        f'<div class="text"><mark>{esc(result.prefill)}</mark>{completion}</div>'
        f'<div class="meta">{esc(" · ".join(meta))}</div></section>'
    )


def _shaded(text: str, per_char: Sequence[float]) -> str:
    def shade(gap: float) -> str:
        level = min(SHADE_LEVELS, int(abs(gap) / SHADE_FULL_NATS_PER_CHAR * SHADE_LEVELS + 0.5))
        return "" if level == 0 else f"{'p' if gap > 0 else 'n'}{level}"

    runs = groupby(zip(text, map(shade, per_char), strict=True), key=lambda pair: pair[1])
    parts = []
    for css_class, chars in runs:
        chunk = html.escape("".join(char for char, _ in chars))
        parts.append(f'<span class="{css_class}">{chunk}</span>' if css_class else chunk)
    return "".join(parts)


def _html_row(result: CompletionResult, anchor: str) -> str:
    esc = html.escape
    if result.gaps is None:
        numbers = '<td class="num" colspan="3">no gap</td>'
    else:
        numbers = (
            f'<td class="num">{result.gaps.ppl_diff:.2f}</td><td class="num">{result.gaps.logppl_diff:.3f}</td>'
            f'<td class="num">{result.gaps.bpb_diff:.3f}</td>'
        )
    numbers += f'<td class="num">{result.degeneracy:.2f}</td>'
    details = [
        f"prefill_id {result.prefill_id}",
        f"doc_id {result.doc_id}",
        f"finish {result.finish_reason}",
    ]
    if result.alignment_detail:
        details.append(result.alignment_detail)
    for side, stats in (("target", result.target), ("reference", result.reference)):
        if stats is not None:
            details.append(
                f"{side}: nll {stats.nll_nats:.3f} nats, {stats.n_tokens} tokens, {stats.n_bytes} bytes, "
                f"ppl {stats.ppl:.3f}, {stats.bits_per_byte:.3f} bits/byte"
            )
    return (
        f'<tr id="{anchor}"><td class="num">{result.rank if result.rank is not None else "–"}</td>{numbers}'
        f"<td>{esc(_alignment_label(result))}</td><td>{esc(result.source)} / {esc(result.framing)}</td>"
        f'<td class="text"><mark>{esc(result.prefill)}</mark>{esc(result.completion)}</td>'
        f"<td><details><summary>more</summary>{'<br>'.join(esc(line) for line in details)}</details></td></tr>"
    )
