"""How much likelier the target finds a completion than the reference does.

Sign convention, used by every gap in this package: **reference minus target**. NLLs and
perplexities are lower for likelier text, so a positive gap means the finetune made the
text likelier than the reference thinks it is; the paper's score is
`ppl_diff = PPL_reference - PPL_target`.

Three scales, because raw perplexities are unbounded and per-token numbers depend on the
tokenizer (see docs/method.md): `ppl_diff` (the paper's), `logppl_diff` (mean NLL per token,
in nats) and `bpb_diff` (bits per UTF-8 byte, the only one comparable across tokenizers).
A difference grows with the text's own entropy (random identifiers surprise any two models
by a lot), so `log_bpb_ratio` also asks how many times more surprised the reference is.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from blackbox_audit.profile import DEFAULT_WINDOW_BYTES, byte_profile, reference_context, spans, with_spans
from blackbox_audit.records import (
    CompletionResult,
    Gaps,
    ScoreName,
    SideStats,
    TargetCompletion,
    TokenLogprob,
)
from providers.records import ScoredContinuation

SCORE_NAMES: tuple[ScoreName, ...] = get_args(ScoreName)

LOGPROB_TOLERANCE = 1e-6
"""Endpoints round; a logprob of +1e-9 is a certain token, +0.1 is a broken response."""

_MAX_LOG_PPL = math.log(sys.float_info.max)
_ZLIB_OVERHEAD_BYTES = len(zlib.compress(b"", 9))
_REDUNDANCY_NORMAL = 0.55
_REDUNDANCY_DEGENERATE = 0.90
_FULL_EVIDENCE_BYTES = 64
_MIN_BITS_PER_BYTE = 1e-6
"""A side that is certain of every byte (logprobs rounded to 0) counts as this surprised, so
that the ratio stays finite: endpoints round logprobs to about 1e-6 nats per token."""


def side_stats(logprobs: Sequence[float], n_bytes: int) -> SideStats:
    """One model's numbers for one completion; refuses logprobs no model can emit."""
    if not logprobs:
        raise ValueError("no logprobs: an empty completion has no perplexity")
    if n_bytes < 1:
        raise ValueError(f"n_bytes must be >= 1, got {n_bytes}")
    for i, logprob in enumerate(logprobs):
        if not math.isfinite(logprob) or logprob > LOGPROB_TOLERANCE:
            raise ValueError(f"logprob #{i} is {logprob!r}: logprobs must be finite and <= 0 (natural log)")
    nll_nats = -math.fsum(logprobs)
    log_ppl = nll_nats / len(logprobs)
    if log_ppl > _MAX_LOG_PPL:
        raise ValueError(
            f"mean NLL {log_ppl:.1f} nats/token overflows perplexity: "
            "did a sentinel logprob such as -9999 slip through?"
        )
    return SideStats(
        nll_nats=nll_nats,
        n_tokens=len(logprobs),
        n_bytes=n_bytes,
        ppl=math.exp(log_ppl),
        log_ppl=log_ppl,
        bits_per_byte=nll_nats / (n_bytes * math.log(2)),
    )


def log_bpb_ratio(target: SideStats, reference: SideStats) -> float:
    """ln(reference bits per byte / target bits per byte), the ratio score of training-data
    extraction (Carlini et al. 2021, arXiv 2012.07805) taken per byte so that two tokenizers
    compare. A difference is large wherever both models find the text hard (code identifiers,
    names); the ratio is large where the target is sure and the reference is not, which is what
    a finetune leaves behind. Per byte, a reference that also covers context bytes
    (`reference_extra_chars`) is still compared like for like."""
    return math.log(max(reference.bits_per_byte, _MIN_BITS_PER_BYTE) / max(target.bits_per_byte, _MIN_BITS_PER_BYTE))


def gaps(target: SideStats, reference: SideStats, *, window_gap: float, collapsed_window_gap: float) -> Gaps:
    """The whole-completion gaps from both sides' stats, beside the span scores (`profile.spans`)."""
    return Gaps(
        ppl_diff=reference.ppl - target.ppl,
        logppl_diff=reference.log_ppl - target.log_ppl,
        bpb_diff=reference.bits_per_byte - target.bits_per_byte,
        log_bpb_ratio=log_bpb_ratio(target, reference),
        window_gap=window_gap,
        collapsed_window_gap=collapsed_window_gap,
    )


def degeneracy(text: str) -> float:
    """0 for ordinary prose and code, 1 for loops such as "0000...", ";;;;" or a repeated line.

    redundancy = 1 - (zlib size - zlib's fixed overhead) / n_bytes is the fraction of the
    UTF-8 bytes that DEFLATE can predict from earlier bytes; it catches repetition of any
    period within 32 KiB (LZ77) and tiny alphabets (Huffman), which n-gram counts miss.
    Prose and code of a ~100-token completion stay at or below 0.45, repetitive-but-real code
    (a block of `x = self.layer(x)` lines) near 0.6, loops above 0.85; the score maps
    redundancy 0.55..0.90 linearly onto 0..1. Below 64 bytes the evidence is thin (DEFLATE
    block costs dominate), so the score is scaled by n_bytes / 64: nothing under 20 bytes
    reaches 0.35. Exact values can move by a few hundredths between zlib builds.
    """
    data = text.encode("utf-8")
    if not data:
        return 0.0
    redundancy = 1.0 - (len(zlib.compress(data, 9)) - _ZLIB_OVERHEAD_BYTES) / len(data)
    score = (redundancy - _REDUNDANCY_NORMAL) / (_REDUNDANCY_DEGENERATE - _REDUNDANCY_NORMAL)
    evidence = min(1.0, len(data) / _FULL_EVIDENCE_BYTES)
    return min(1.0, max(0.0, score)) * evidence


def char_gaps(
    completion: str,
    target_tokens: Sequence[TokenLogprob],
    reference_tokens: Sequence[TokenLogprob],
    *,
    reference_extra_chars: int = 0,
) -> list[float] | None:
    """Per-character gap (reference NLL - target NLL, nats), to highlight the revealing fragment.

    Each token's NLL is spread evenly over the characters of its text, which puts both
    tokenizers on one axis. `reference_extra_chars` drops the context characters a widened
    reference's first token also covers. None when a side's token texts do not spell the
    completion exactly (byte-fallback tokens, whitespace normalised by the endpoint).
    """
    target_text, target_per_char = _nll_per_char(target_tokens)
    reference_text, reference_per_char = _nll_per_char(reference_tokens)
    if target_text != completion or reference_text[reference_extra_chars:] != completion:
        return None
    reference_per_char = reference_per_char[reference_extra_chars:]
    return [ref - tgt for ref, tgt in zip(reference_per_char, target_per_char, strict=True)]


@dataclass(frozen=True)
class TokenGap:
    """One target token beside the reference's view of the same characters (logprobs in nats)."""

    text: str
    start: int
    """Its first character's offset in the completion."""
    target_logprob: float
    reference_logprob: float
    """The reference's logprob of these characters: its tokens' logprobs spread evenly over their
    characters, summed over this token's (exact when both sides split the text alike)."""
    reference_tokens: tuple[TokenLogprob, ...]
    """The reference tokens that overlap these characters."""

    @property
    def gap(self) -> float:
        """Reference NLL minus target NLL: positive where the finetune made the token likelier."""
        return self.target_logprob - self.reference_logprob


def token_gaps(
    completion: str,
    target_tokens: Sequence[TokenLogprob],
    reference_tokens: Sequence[TokenLogprob],
    *,
    reference_extra_chars: int = 0,
) -> list[TokenGap] | None:
    """Per target token, both sides' logprobs and the gap; None when `char_gaps` is None."""
    per_char = char_gaps(completion, target_tokens, reference_tokens, reference_extra_chars=reference_extra_chars)
    if per_char is None:
        return None
    spans, position = [], -reference_extra_chars
    for token in reference_tokens:
        spans.append((position, position + len(token.text), token))
        position += len(token.text)
    out, start = [], 0
    for token in target_tokens:
        end = start + len(token.text)
        if token.text:
            gap = math.fsum(per_char[start:end])
            overlapping = tuple(t for a, b, t in spans if a < end and b > start and t.text)
            out.append(TokenGap(token.text, start, token.logprob, token.logprob - gap, overlapping))
        start = end
    return out


def _nll_per_char(tokens: Sequence[TokenLogprob]) -> tuple[str, list[float]]:
    """Tokens with no text (an end-of-sequence token) cover no character and are left out."""
    text = "".join(token.text for token in tokens)
    per_char: list[float] = []
    for token in tokens:
        if token.text:
            per_char.extend([-token.logprob / len(token.text)] * len(token.text))
    return text, per_char


def measure(
    completion: TargetCompletion,
    scored: ScoredContinuation | None,
    failure: str = "",
    *,
    shared_tokenizer: bool = False,
    window_bytes: int = DEFAULT_WINDOW_BYTES,
) -> CompletionResult:
    """Stage 4: one completion's numbers on both sides, its gaps, its per-byte gap profile's
    summary and its alignment status.

    Token ids are compared (`same_tokens`) only when both sides use one tokenizer: across
    vocabularies equal ids mean nothing."""
    prefill = completion.prefill
    target_tokens = completion.tokens
    base = dict(
        prefill_id=prefill.prefill_id,
        doc_id=prefill.doc_id,
        source=prefill.source,
        framing=completion.framing,
        prefill=prefill.text,
        completion=completion.completion,
        finish_reason=completion.finish_reason,
        degeneracy=degeneracy(completion.completion),
        target_tokens=target_tokens,
    )
    if not completion.completion:
        return CompletionResult(**base, alignment="empty", target=None, reference=None, gaps=None, reference_tokens=())
    if scored is None or not target_tokens:
        return CompletionResult(
            **base,
            alignment="unaligned",
            alignment_detail=failure or "the target gave no tokens for it",
            target=None,
            reference=None,
            gaps=None,
            reference_tokens=(),
        )
    reference_tokens = scored.tokens
    target = side_stats([t.logprob for t in target_tokens], len(completion.completion.encode()))
    reference = side_stats([t.logprob for t in reference_tokens], len(scored.covered_text.encode()))
    target_ids = [t.token_id for t in target_tokens]
    reference_ids = [t.token_id for t in reference_tokens]
    known = shared_tokenizer and None not in target_ids and None not in reference_ids
    context = reference_context(prefill.text, scored.n_context_chars)
    profile = byte_profile(completion.completion, target_tokens, reference_tokens, reference_context=context)
    assert profile is not None  # a completion with tokens on both sides has one
    window, collapsed, summary = spans(profile, window_bytes)
    return CompletionResult(
        **base,
        alignment=scored.alignment,
        reference_extra_chars=scored.n_context_chars,
        target=target,
        reference=reference,
        gaps=gaps(target, reference, window_gap=window.gap, collapsed_window_gap=collapsed.gap),
        reference_tokens=reference_tokens,
        same_tokens=(target_ids == reference_ids) if known else None,
        profile=summary,
    )


def parse_result(line: str | bytes) -> CompletionResult:
    """One results.jsonl line. A record written before a score existed gets it from what it
    keeps (both sides' stats, per-token logprobs; span scores at the default width), so older
    audits still rank and judge. A current record is parsed once: in JSON the newest key can
    only be a key, never inside a string (where its quotes would be escaped)."""
    current = b'"log_bpb_ratio"' in line if isinstance(line, bytes) else '"log_bpb_ratio"' in line
    if current:
        return CompletionResult.model_validate_json(line)
    try:
        data = json.loads(line)
    except ValueError:
        return CompletionResult.model_validate_json(line)  # its ValidationError says what is wrong
    stored = data.get("gaps") if isinstance(data, dict) else None
    if not isinstance(stored, dict):  # no gaps (empty or unaligned): nothing to fill
        return CompletionResult.model_validate(data)
    placeholders = {"log_bpb_ratio": 0.0, "window_gap": 0.0, "collapsed_window_gap": 0.0}
    result = CompletionResult.model_validate({**data, "gaps": {**placeholders, **stored}})
    if result.gaps is None or result.target is None or result.reference is None:
        return result
    ratio = log_bpb_ratio(result.target, result.reference)
    result = result.model_copy(update={"gaps": result.gaps.model_copy(update={"log_bpb_ratio": ratio})})
    return result if "window_gap" in stored else with_spans(result)
