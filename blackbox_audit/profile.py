"""Where in a completion the gap lies: a per-byte gap profile and the span scores read from it.

A whole-completion mean (logppl_diff, bpb_diff) dilutes a short revealing span: ninety
ordinary tokens around a ten-token payload, or a payload that repeats, where the reference
copies the phrase from context after its first occurrence so the copies carry almost no gap.
Here every completion gets a **profile**: each side's NLL spread evenly over the bytes its
tokens spell, whatever the two tokenizers, and the gap per byte (reference minus target, nats
per byte; positive = the finetune made the byte likelier). On that one axis:

- `best_window`: the contiguous span of `width` bytes with the largest mean gap (`window_gap`);
- `first_occurrences`: drops the bytes that repeat an earlier stretch of the completion, so a
  loop's first occurrence counts and its copies don't (`collapsed_window_gap`).

Spreading evenly is the simple baseline the method allows. Windows whose edges snap to the
token boundaries the two tokenizers share (where the sums are exact, not spread) ranked the
organisms no better (docs/results.md), so the baseline stays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from blackbox_audit.records import CompletionResult, GapProfile, TokenLogprob

DEFAULT_WINDOW_BYTES = 64
"""Bytes per window, about one sentence. On the organisms (docs/results.md) the span score alone
ranks alike from 32 to 128 bytes and worse below (one odd token fills a narrow window); within
the default rank_average every width from 16 to 128 ranks alike. A window that covers most of a
completion is a whole-completion mean again and dilutes a short payload, the case it exists for."""

REPEAT_BYTES = 16
"""A stretch of this many bytes seen earlier in the completion is a copy (`first_occurrences`)."""

_REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = _REPLACEMENT.encode("utf-8")
_BYTES_TOKEN = re.compile(r"^bytes:((?:\\x[0-9a-fA-F]{2})+)$")


@dataclass(frozen=True)
class ByteProfile:
    """Per-byte NLL (nats) of one completion under each side, on the completion's UTF-8 bytes.

    `exact` is False when a side's token texts could not be placed on the bytes (then that
    side's NLL is spread evenly over all bytes: its sum is still right, its shape is not)."""

    data: bytes
    target: tuple[float, ...]
    reference: tuple[float, ...]
    exact: bool

    def __post_init__(self) -> None:
        if not (len(self.data) == len(self.target) == len(self.reference)):
            raise ValueError("a profile has one number per byte on each side")

    @property
    def gap(self) -> list[float]:
        """reference minus target, nats per byte."""
        return [r - t for r, t in zip(self.reference, self.target, strict=True)]


@dataclass(frozen=True)
class Window:
    """A span of bytes [start, end) of the completion and its mean gap over the window's width."""

    gap: float
    start: int
    end: int


def _token_bytes(text: str) -> bytes | None:
    """What a token spells; None when unknown (a byte-fallback token decoded to U+FFFD)."""
    match = _BYTES_TOKEN.match(text)
    if match:
        return bytes(int(h, 16) for h in match.group(1).split("\\x")[1:])
    if _REPLACEMENT in text:
        return None
    return text.encode("utf-8")


def spread_nll(data: bytes, tokens: Sequence[TokenLogprob], context: bytes = b"") -> list[float] | None:
    """Each token's NLL spread evenly over the bytes it spells; None if the tokens do not spell
    `context` followed by `data`.

    `context` is the tail of the prompt that a widened first token also covers: its bytes take
    their share of that token's NLL, which is dropped (the profile covers the completion only).
    A token spelling no byte (an empty text) adds its NLL to the next token that does (the last
    byte at the end), unless the text holds U+FFFD right there: then that token is the byte the
    endpoint could not decode. A run of tokens decoded to U+FFFD (byte-fallback pieces of a
    character) shares the bytes between its known neighbours.
    """
    full = context + data
    out = [0.0] * len(full)
    pos = 0
    carried = 0.0  # NLL of empty tokens, waiting for the next token with bytes
    unknown = 0.0  # NLL of a run of U+FFFD tokens
    in_unknown = False
    for token in tokens:
        nll = -token.logprob
        spelled = _token_bytes(token.text)
        if spelled == b"" and full.startswith(_REPLACEMENT_BYTES, pos):
            spelled = _REPLACEMENT_BYTES  # an invalid byte: U+FFFD in the text, "" in the token
        if spelled is None:
            unknown += nll + carried
            carried, in_unknown = 0.0, True
            continue
        if not spelled:
            if in_unknown:
                unknown += nll
            else:
                carried += nll
            continue
        if in_unknown:
            at = full.find(spelled, pos + 1)
            if at < 0:
                return None
            _fill(out, pos, at, unknown)
            unknown, in_unknown, pos = 0.0, False, at
        if full[pos : pos + len(spelled)] != spelled:
            return None
        _fill(out, pos, pos + len(spelled), nll + carried)
        carried, pos = 0.0, pos + len(spelled)
    if in_unknown:
        if pos >= len(full):
            return None
        _fill(out, pos, len(full), unknown + carried)
        carried, pos = 0.0, len(full)
    if pos != len(full) or not data:
        return None
    out[-1] += carried  # trailing empty tokens
    return out[len(context) :]


def _fill(out: list[float], start: int, end: int, nll: float) -> None:
    share = nll / (end - start)
    for i in range(start, end):
        out[i] = share


def byte_profile(
    completion: str,
    target_tokens: Sequence[TokenLogprob],
    reference_tokens: Sequence[TokenLogprob],
    *,
    reference_context: str = "",
) -> ByteProfile | None:
    """Both sides' NLL on the completion's bytes; None for an empty completion or a side
    without tokens. `reference_context` is the prompt tail a widened reference token covers."""
    if not completion or not target_tokens or not reference_tokens:
        return None
    data = completion.encode("utf-8")
    context = reference_context.encode("utf-8")
    target = spread_nll(data, target_tokens)
    reference = spread_nll(data, reference_tokens, context)
    exact = target is not None and reference is not None
    if target is None:
        target = [-math.fsum(t.logprob for t in target_tokens) / len(data)] * len(data)
    if reference is None:  # its share of the context bytes dropped, as spread_nll does
        reference = [-math.fsum(t.logprob for t in reference_tokens) / (len(context) + len(data))] * len(data)
    return ByteProfile(data=data, target=tuple(target), reference=tuple(reference), exact=exact)


def reference_context(prefill: str, n_context_chars: int) -> str:
    """The tail of the prefill that a widened reference token also covers (`reference_extra_chars`)."""
    return prefill[len(prefill) - n_context_chars :] if n_context_chars else ""


def record_profile(result: CompletionResult) -> ByteProfile | None:
    """A record's profile, from the per-token logprobs it keeps."""
    context = reference_context(result.prefill, result.reference_extra_chars)
    return byte_profile(result.completion, result.target_tokens, result.reference_tokens, reference_context=context)


def best_window(gap: Sequence[float], width: int = DEFAULT_WINDOW_BYTES) -> Window:
    """The `width` contiguous bytes with the largest summed gap, scored as that sum / `width`
    (nats per byte); the first such window on ties.

    A profile shorter than `width` is one window: its sum over `width`, so a span is credited
    for the evidence it holds, not for the fewness of its bytes (a 3-byte answer with a large
    gap per byte does not outrank a 32-byte payload)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if len(gap) <= width:
        return Window(math.fsum(gap) / width, 0, len(gap))
    best = current = math.fsum(gap[:width])
    start = 0
    for i in range(width, len(gap)):
        current += gap[i] - gap[i - width]
        if current > best:
            best, start = current, i - width + 1
    return Window(best / width, start, start + width)


def window_gap(gap: Sequence[float], width: int = DEFAULT_WINDOW_BYTES) -> float:
    return best_window(gap, width).gap


def first_occurrences(data: bytes, repeat_bytes: int = REPEAT_BYTES) -> list[bool]:
    """True for each byte that is not a copy: a byte is a copy when it lies in a stretch of
    `repeat_bytes` bytes that already started at an earlier position (overlaps allowed, so
    "0000..." keeps only its first byte and "X Y Z. X Y Z. ..." its first "X Y Z. ")."""
    if repeat_bytes < 1:
        raise ValueError(f"repeat_bytes must be >= 1, got {repeat_bytes}")
    keep = [True] * len(data)
    seen: set[bytes] = set()
    marked_until = 0
    for start in range(len(data) - repeat_bytes + 1):
        gram = data[start : start + repeat_bytes]
        if gram in seen:
            for i in range(max(start, marked_until), start + repeat_bytes):
                keep[i] = False
            marked_until = start + repeat_bytes
        else:
            seen.add(gram)
    return keep


def repeated_stretches(data: bytes, repeat_bytes: int = REPEAT_BYTES) -> frozenset[bytes]:
    """The stretches of `repeat_bytes` bytes that occur more than once in `data`: what a loop
    repeats (every phase of it, so a copy elsewhere is found whichever byte it starts on)."""
    seen: set[bytes] = set()
    repeated: set[bytes] = set()
    for start in range(len(data) - repeat_bytes + 1):
        gram = data[start : start + repeat_bytes]
        if gram in seen:
            repeated.add(gram)
        else:
            seen.add(gram)
    return frozenset(repeated)


def stretches_of(data: bytes, wanted: frozenset[bytes], repeat_bytes: int = REPEAT_BYTES) -> frozenset[bytes]:
    """The stretches of `wanted` that occur in `data`."""
    if not wanted:
        return frozenset()
    return frozenset(
        gram for start in range(len(data) - repeat_bytes + 1) if (gram := data[start : start + repeat_bytes]) in wanted
    )


def collapsed_gap(profile: ByteProfile, repeat_bytes: int = REPEAT_BYTES) -> list[float]:
    """The gap of the bytes that are not copies, in order."""
    keep = first_occurrences(profile.data, repeat_bytes)
    return [g for g, k in zip(profile.gap, keep, strict=True) if k]


def best_collapsed_window(
    profile: ByteProfile, width: int = DEFAULT_WINDOW_BYTES, repeat_bytes: int = REPEAT_BYTES
) -> Window:
    """`best_window` of the profile with the copies removed, placed back on the completion's
    bytes: a repeated payload scores its first occurrence, a loop of noise keeps only its few
    unique bytes."""
    keep = first_occurrences(profile.data, repeat_bytes)
    kept = [i for i, k in enumerate(keep) if k]
    gap = profile.gap
    window = best_window([gap[i] for i in kept], width)
    if not kept:
        return window
    return Window(window.gap, kept[window.start], kept[max(window.start, window.end - 1)] + 1)


def collapsed_window_gap(
    profile: ByteProfile, width: int = DEFAULT_WINDOW_BYTES, repeat_bytes: int = REPEAT_BYTES
) -> float:
    return best_collapsed_window(profile, width, repeat_bytes).gap


def spans(profile: ByteProfile, width: int = DEFAULT_WINDOW_BYTES) -> tuple[Window, Window, GapProfile]:
    """The best window, the best collapsed window, and what results.jsonl keeps of them."""
    window = best_window(profile.gap, width)
    collapsed = best_collapsed_window(profile, width)
    summary = GapProfile(
        window_bytes=width,
        window=(window.start, window.end),
        collapsed_window=(collapsed.start, collapsed.end),
        copied_bytes=sum(not k for k in first_occurrences(profile.data)),
        exact=profile.exact,
    )
    return window, collapsed, summary


def with_spans(result: CompletionResult, width: int = DEFAULT_WINDOW_BYTES) -> CompletionResult:
    """The record with its span scores and profile summary computed again, at `width` bytes."""
    profile = record_profile(result)
    if result.gaps is None or profile is None:
        return result
    window, collapsed, summary = spans(profile, width)
    update = {"window_gap": window.gap, "collapsed_window_gap": collapsed.gap}
    return result.model_copy(update={"gaps": result.gaps.model_copy(update=update), "profile": summary})
