"""A completion's text as HTML: shaded by gap, whitespace made visible, keywords and the best
window marked, and
(in the report's cards) each target token carrying both sides' logprobs in a tooltip.

Whitespace is part of what a model generated, so it is shown, never left to collapse or to
sprawl: a newline is a ⏎ marker (in full view one line break follows, however many newlines
the run had: 65 newlines render as "⏎×65" on one line, not 1,200 pixels of blank), a tab is →,
a run of 8 or more spaces is "␣×n", other control characters are �. Pure functions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from itertools import groupby

from blackbox_audit.evaluate import OrganismSpec
from blackbox_audit.gap import TokenGap

SHADE_LEVELS = 8
SHADE_FULL_NATS_PER_CHAR = 2.0
"""A per-character gap this large gets the darkest shade; a revealing token's gap of 5-10 nats
spread over 3-5 characters lands there, ordinary tokenizer noise stays pale."""

SPACE_RUN = 8
_WHITESPACE = re.compile(rf"\n+|\r+|\t| {{{SPACE_RUN},}}")
_NEWLINES = re.compile(r"\n+")


def shade(gap: float) -> str:
    """The CSS class of a per-character gap: p1..p8 likelier under the target, n1..n8 under the reference."""
    level = min(SHADE_LEVELS, int(abs(gap) / SHADE_FULL_NATS_PER_CHAR * SHADE_LEVELS + 0.5))
    return "" if level == 0 else f"{'p' if gap > 0 else 'n'}{level}"


def char_marks(text: str, spec: OrganismSpec | None, window: tuple[int, int] | None = None) -> list[str] | None:
    """Per character, the extra CSS classes: `kw` in a keyword (or regex match) of any of the
    spec's sets, `win` in the best window of the ranking's score; None when neither applies."""
    if spec is None and window is None:
        return None
    keywords = [False] * len(text)
    if spec is not None:
        patterns = [re.compile(re.escape(k), re.IGNORECASE) for keywords_ in spec.keyword_sets for k in keywords_]
        patterns += [re.compile(p, re.IGNORECASE) for patterns_ in spec.regex_sets for p in patterns_]
        for pattern in patterns:
            for match in pattern.finditer(text):
                keywords[match.start() : match.end()] = [True] * (match.end() - match.start())
    start, end = window or (0, 0)
    return [
        " ".join(c for c in ("kw" if keyword else "", "win" if start <= i < end else "") if c)
        for i, keyword in enumerate(keywords)
    ]


def render(
    text: str,
    per_char: Sequence[float] | None = None,
    marks: Sequence[str] | None = None,
    *,
    breaks: bool = True,
    start: int = 0,
) -> str:
    """`text` (the characters from `start` of the arrays) as escaped HTML. `breaks`: a newline run
    also ends the line (cards); without, everything stays on one wrapped line (table rows)."""
    out: list[str] = []
    position = 0
    for match in _WHITESPACE.finditer(text):
        out.append(_runs(text[position : match.start()], per_char, marks, start + position))
        out.append(_marker(match.group(), _class_at(per_char, marks, start + match.start()), breaks))
        position = match.end()
    out.append(_runs(text[position:], per_char, marks, start + position))
    return "".join(out)


def render_tokens(text: str, tokens: Sequence[TokenGap], per_char: Sequence[float], marks: Sequence[str] | None) -> str:
    """Each target token a span whose tooltip gives both sides' logprobs and the gap; a run of
    newline-only tokens is one span (one ⏎×n marker, its tooltip summing the run)."""
    parts = []
    i = 0
    while i < len(tokens):
        j = i + 1
        if _NEWLINES.fullmatch(tokens[i].text):
            while j < len(tokens) and _NEWLINES.fullmatch(tokens[j].text):
                j += 1
        run = tokens[i:j]
        chunk = "".join(t.text for t in run)
        inner = render(chunk, per_char, marks, start=run[0].start)
        parts.append(f'<span class="tok" title="{html.escape(token_tooltip(run))}">{inner}</span>')
        i = j
    covered = sum(len(t.text) for t in tokens)
    parts.append(render(text[covered:], per_char, marks, start=covered))
    return "".join(parts)


def token_tooltip(run: Sequence[TokenGap]) -> str:
    """Both sides' logprobs and the gap of a token (or of a run of newline tokens, summed)."""
    text = "".join(t.text for t in run)
    target = sum(t.target_logprob for t in run)
    reference = sum(t.reference_logprob for t in run)
    pieces = list(dict.fromkeys(r for t in run for r in t.reference_tokens))
    listed = " + ".join(f"{r.text!r} {r.logprob:.2f}" for r in pieces[:8]) + (" + …" if len(pieces) > 8 else "")
    what = f"{text!r}" if len(run) == 1 else f"{len(run)} tokens {text[:40]!r}"
    return (
        f"{what}\ntarget logprob {target:.3f}\n"
        f"reference logprob {reference:.3f} (its tokens {listed or '-'})\n"
        f"gap {target - reference:+.3f} nats (reference NLL - target NLL)"
    )


def _class_at(per_char: Sequence[float] | None, marks: Sequence[str] | None, i: int) -> str:
    classes = []
    if per_char is not None and i < len(per_char):
        classes.append(shade(per_char[i]))
    if marks is not None and i < len(marks):
        classes.append(marks[i])
    return " ".join(c for c in classes if c)


def _runs(chunk: str, per_char: Sequence[float] | None, marks: Sequence[str] | None, start: int) -> str:
    if not chunk:
        return ""
    classes = (_class_at(per_char, marks, start + i) for i in range(len(chunk)))
    out = []
    for css_class, chars in groupby(zip(chunk, classes, strict=True), key=lambda pair: pair[1]):
        escaped = html.escape("".join(_printable(char) for char, _ in chars))
        out.append(f'<span class="{css_class}">{escaped}</span>' if css_class else escaped)
    return "".join(out)


def _printable(char: str) -> str:
    return char if char.isprintable() or char == " " else "\ufffd"


def _marker(run: str, css_class: str, breaks: bool) -> str:
    symbol = {"\n": "⏎", "\r": "␍", "\t": "→", " ": "␣"}[run[0]]
    label = symbol if len(run) == 1 else f"{symbol}×{len(run)}"
    title = {"\n": "newline", "\r": "carriage return", "\t": "tab", " ": "space"}[run[0]]
    tail = "\n" if breaks and run[0] == "\n" else ""
    classes = f"ws {css_class}".strip()
    return f'<span class="{classes}" title="{len(run)} × {title}">{label}</span>{tail}'
