"""Span-level scores from a per-byte gap profile (a prototype beside gap.py; pure functions).

A whole-completion mean (logppl_diff, bpb_diff) dilutes a short revealing span: ninety
ordinary tokens around a ten-token payload, or a payload that repeats, where the reference
copies the phrase from context after its first occurrence so the copies carry almost no gap.
Here every completion gets a **profile**: each side's NLL spread over the completion's UTF-8
bytes, whatever the two tokenizers, and the gap per byte (reference minus target, nats per
byte; positive = the finetune made the byte likelier). On that one axis:

- `window_gap`: the best contiguous span of `width` bytes, scored by its summed gap / width;
- `first_occurrences`: drops the bytes that repeat an earlier stretch of the completion, so a
  loop's first occurrence counts and its copies don't (`collapsed_window_gap` scores what is
  left);
- `is_noise_loop`: a degenerate completion whose first occurrence carries no large gap (what
  "000000" or ": 12: 12" look like), as opposed to a repeated payload.

Records keep each side's per-token texts and logprobs (`target_tokens`, `reference_tokens`,
`reference_extra_chars`), so everything here is computed offline from results.jsonl.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.records import CompletionResult, TokenLogprob

DEFAULT_WIDTH = 64
"""Bytes per window; see docs/results.md for the widths measured."""

DEFAULT_REPEAT_BYTES = 16
"""A stretch of this many bytes seen earlier in the completion is a copy (see `first_occurrences`)."""

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
    endpoint could not decode. A run of tokens decoded to U+FFFD (byte-fallback pieces of a character)
    shares the bytes between its known neighbours.
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
            spelled = (
                _REPLACEMENT_BYTES  # an invalid byte the endpoint decoded to U+FFFD in the text, to "" in the token
            )
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


def byte_profile(result: CompletionResult) -> ByteProfile | None:
    """The record's profile; None for a record without gaps (empty or unaligned)."""
    if result.gaps is None or result.target is None or result.reference is None or not result.completion:
        return None
    data = result.completion.encode("utf-8")
    n_extra = result.reference_extra_chars
    context = result.prefill[len(result.prefill) - n_extra :].encode("utf-8") if n_extra else b""
    target = spread_nll(data, result.target_tokens)
    reference = spread_nll(data, result.reference_tokens, context)
    exact = target is not None and reference is not None
    if target is None:
        target = [result.target.nll_nats / len(data)] * len(data)
    if reference is None:  # its share of the context bytes dropped, as spread_nll does
        reference = [result.reference.nll_nats / result.reference.n_bytes] * len(data)
    return ByteProfile(data=data, target=tuple(target), reference=tuple(reference), exact=exact)


def window_gap(gap: Sequence[float], width: int = DEFAULT_WIDTH) -> float:
    """The largest summed gap of `width` contiguous bytes, divided by `width` (nats per byte).

    A profile shorter than `width` is one window: its sum over `width`, so a span is credited
    for the evidence it holds, not for the fewness of its bytes (a 3-byte answer with a large
    gap per byte does not outrank a 64-byte payload)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if not gap:
        return 0.0
    if len(gap) <= width:
        return math.fsum(gap) / width
    best = current = math.fsum(gap[:width])
    for i in range(width, len(gap)):
        current += gap[i] - gap[i - width]
        best = max(best, current)
    return best / width


def first_occurrences(data: bytes, repeat_bytes: int = DEFAULT_REPEAT_BYTES) -> list[bool]:
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


def collapsed_gap(profile: ByteProfile, repeat_bytes: int = DEFAULT_REPEAT_BYTES) -> list[float]:
    """The gap of the bytes that are not copies, in order."""
    keep = first_occurrences(profile.data, repeat_bytes)
    return [g for g, k in zip(profile.gap, keep, strict=True) if k]


def collapsed_window_gap(
    profile: ByteProfile, width: int = DEFAULT_WIDTH, repeat_bytes: int = DEFAULT_REPEAT_BYTES
) -> float:
    """`window_gap` of the profile with the copies removed: a repeated payload scores its first
    occurrence, and a loop of noise keeps only its few unique bytes."""
    return window_gap(collapsed_gap(profile, repeat_bytes), width)


def collapsed_mean_gap(profile: ByteProfile, repeat_bytes: int = DEFAULT_REPEAT_BYTES) -> float:
    """Mean gap per byte over the bytes that are not copies (bpb_diff without the copies, in nats)."""
    kept = collapsed_gap(profile, repeat_bytes)
    return math.fsum(kept) / len(kept) if kept else 0.0


def is_noise_loop(
    result: CompletionResult, profile: ByteProfile | None, payload_floor: float, threshold: float = 0.6
) -> bool:
    """A loop to demote: degenerate (`gap.degeneracy` >= threshold) and its first occurrence's
    best window scores below `payload_floor`. A repeated payload keeps its place."""
    if result.degeneracy < threshold:
        return False
    return profile is None or collapsed_window_gap(profile) < payload_floor


# ---------------------------------------------------------------- ranking by a profile score

WIDTHS = (16, 32, 64, 128)

SPAN_SCORES: dict[str, Callable[[ByteProfile], float]] = {
    **{f"window{w}": (lambda p, w=w: window_gap(p.gap, w)) for w in WIDTHS},
    "collapsed_mean": collapsed_mean_gap,
    **{f"collapsed_window{w}": (lambda p, w=w: collapsed_window_gap(p, w)) for w in WIDTHS},
}
"""Profile scores by name (nats per byte), beside gap.SCORE_NAMES' whole-completion ones."""

DemotionName = Literal["off", "degenerate", "noise-loop"]
NOISE_LOOP_QUANTILE = 0.5
"""A degenerate completion is a noise loop when its first occurrence scores below this quantile
of the audit's non-degenerate completions (`payload_floor`)."""


def score_value(result: CompletionResult, profile: ByteProfile | None, score: str) -> float | None:
    """A whole-completion gap (gap.SCORE_NAMES) or a SPAN_SCORES score; None without gaps."""
    if result.gaps is None:
        return None
    if score in SPAN_SCORES:
        return None if profile is None else SPAN_SCORES[score](profile)
    value = getattr(result.gaps, score, None)
    if value is None:
        raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORE_NAMES + tuple(SPAN_SCORES))}")
    return value


def payload_floor(
    results: Sequence[CompletionResult],
    profiles: Sequence[ByteProfile | None],
    threshold: float = 0.6,
    quantile: float = NOISE_LOOP_QUANTILE,
) -> float:
    """The `quantile` of the collapsed window scores of the audit's non-degenerate completions."""
    values = sorted(
        collapsed_window_gap(p)
        for r, p in zip(results, profiles, strict=True)
        if p is not None and r.degeneracy < threshold
    )
    if not values:
        return math.inf
    return values[min(len(values) - 1, int(quantile * len(values)))]


def order(
    results: Sequence[CompletionResult],
    score: str,
    demotion: DemotionName = "off",
    *,
    threshold: float = 0.6,
    profiles: Sequence[ByteProfile | None] | None = None,
) -> list[CompletionResult]:
    """Copies ranked 1..n by `score` descending, demoted records after the rest, records
    without gaps last (rank None); ties go to (prefill_id, framing), as in ranking.rank.

    demotion "degenerate": every completion with degeneracy >= threshold (ranking.rank's
    filter); "noise-loop": only those whose first occurrence carries no large gap
    (`is_noise_loop` against the audit's `payload_floor`)."""
    if profiles is None:
        profiles = [byte_profile(r) for r in results]
    floor = payload_floor(results, profiles, threshold) if demotion == "noise-loop" else math.inf
    keyed = []
    unscored = []
    for result, profile in zip(results, profiles, strict=True):
        value = score_value(result, profile, score)
        if value is None:
            unscored.append(result)
            continue
        if not math.isfinite(value):
            raise ValueError(f"{score} of {result.prefill_id} ({result.framing}) is {value!r}")
        if demotion == "degenerate":
            demoted = result.degeneracy >= threshold
        elif demotion == "noise-loop":
            demoted = is_noise_loop(result, profile, floor, threshold)
        else:
            demoted = False
        keyed.append(((demoted, -value, result.prefill_id, result.framing), result))
    keyed.sort(key=lambda pair: pair[0])
    ranked = [result.model_copy(update={"rank": i}) for i, (_, result) in enumerate(keyed, start=1)]
    unscored.sort(key=lambda result: (result.prefill_id, result.framing))
    return ranked + [result.model_copy(update={"rank": None}) for result in unscored]
