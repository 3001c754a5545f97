"""Records as the pipeline builds them, for every test that needs one: one place to change
when a record gains a field."""

from __future__ import annotations

from collections.abc import Sequence

from blackbox_audit.gap import degeneracy, gaps, side_stats
from blackbox_audit.profile import byte_profile, spans
from blackbox_audit.records import CompletionResult, Framing, Gaps, Prefill, TargetCompletion
from providers.records import ScoredContinuation, TokenLogprob

Tokens = Sequence[tuple[str, float]] | Sequence[tuple[str, float, int | None]]


def token_logprobs(tokens: Tokens) -> tuple[TokenLogprob, ...]:
    """(text, logprob) or (text, logprob, token id) triples as records."""
    return tuple(TokenLogprob(text=t[0], logprob=t[1], token_id=t[2] if len(t) > 2 else None) for t in tokens)  # type: ignore[misc]


def prefill(
    text: str = "Once upon a",
    prefill_id: str = "p0",
    *,
    doc_id: str = "doc:0",
    source: str = "prose",
    n_tokens: int = 3,
) -> Prefill:
    return Prefill(prefill_id=prefill_id, doc_id=doc_id, source=source, text=text, n_tokens=n_tokens)


def target_completion(
    text: str,
    tokens: Tokens,
    *,
    of: Prefill | None = None,
    framing: Framing = "raw",
    finish_reason: str | None = "length",
) -> TargetCompletion:
    """A raw completion of `of` (the default prefill); its prompt is the prefill's text."""
    of = of or prefill()
    return TargetCompletion(
        prefill=of,
        framing=framing,
        prompt=of.text,
        completion=text,
        tokens=token_logprobs(tokens),
        finish_reason=finish_reason,
    )


def scored(tokens: Tokens, covered_text: str, alignment: str = "exact", n_context_chars: int = 0) -> ScoredContinuation:
    return ScoredContinuation(
        tokens=token_logprobs(tokens),
        alignment=alignment,
        covered_text=covered_text,
        n_context_chars=n_context_chars,  # type: ignore[arg-type]
    )


def aligned(
    prefill_id: str, prefill_text: str, target_tokens: Tokens, reference_tokens: Tokens, *, framing: Framing = "raw"
) -> CompletionResult:
    """A record measured from both sides' tokens, the way `gap.measure` builds one."""
    completion = "".join(t[0] for t in target_tokens)
    n_bytes = len(completion.encode("utf-8"))
    target = side_stats([t[1] for t in target_tokens], n_bytes)
    reference = side_stats([t[1] for t in reference_tokens], n_bytes)
    profile = byte_profile(completion, token_logprobs(target_tokens), token_logprobs(reference_tokens))
    assert profile is not None
    window, collapsed, summary = spans(profile)
    return CompletionResult(
        prefill_id=prefill_id,
        doc_id=f"doc/{prefill_id}",
        source="c4",
        framing=framing,
        prefill=prefill_text,
        completion=completion,
        finish_reason="length",
        alignment="exact",
        target=target,
        reference=reference,
        gaps=gaps(target, reference, window_gap=window.gap, collapsed_window_gap=collapsed.gap),
        degeneracy=degeneracy(completion),
        target_tokens=token_logprobs(target_tokens),
        reference_tokens=token_logprobs(reference_tokens),
        profile=summary,
    )


def unaligned(prefill_id: str, completion: str = "x") -> CompletionResult:
    record = aligned(prefill_id, "Hi", [(completion or "x", -1.0)], [(completion or "x", -1.0)])
    return record.model_copy(
        update={
            "completion": completion,
            "alignment": "unaligned" if completion else "empty",
            "target": None,
            "reference": None,
            "gaps": None,
            "target_tokens": (),
            "reference_tokens": (),
        }
    )


def with_gaps(
    prefill_id: str,
    gap: float | None = None,
    *,
    completion: str | None = None,
    degeneracy: float = 0.0,
    framing: Framing = "raw",
    ppl_diff: float | None = None,
    bpb_diff: float | None = None,
    log_bpb_ratio: float | None = None,
    window_gap: float | None = None,
    collapsed_window_gap: float | None = None,
    prefill: str = "The",
    rank: int | None = None,
) -> CompletionResult:
    """A record with given gaps (logppl_diff = `gap`, the others too unless given) and no
    per-token data: for ranking and evaluation, which read only the gaps."""
    record_gaps = None
    if gap is not None:
        record_gaps = Gaps(
            ppl_diff=gap if ppl_diff is None else ppl_diff,
            logppl_diff=gap,
            bpb_diff=gap if bpb_diff is None else bpb_diff,
            log_bpb_ratio=gap if log_bpb_ratio is None else log_bpb_ratio,
            window_gap=gap if window_gap is None else window_gap,
            collapsed_window_gap=gap if collapsed_window_gap is None else collapsed_window_gap,
        )
    text = f" completion {prefill_id}" if completion is None else completion
    return CompletionResult(
        prefill_id=prefill_id,
        doc_id=f"doc-{prefill_id}",
        source="c4",
        framing=framing,
        prefill=prefill,
        completion=text,
        finish_reason="length",
        alignment="exact" if record_gaps is not None else ("empty" if not text else "unaligned"),
        target=None,
        reference=None,
        gaps=record_gaps,
        degeneracy=degeneracy,
        target_tokens=(),
        reference_tokens=(),
        rank=rank,
    )
