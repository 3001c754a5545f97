"""Typed records that travel through the audit, stage by stage.

prefills -> target generation -> reference scoring -> gap -> ranking -> report.
Logprobs and NLLs are in nats; `bits_per_byte` is in bits per UTF-8 byte.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from providers.records import Prompt, Record, ServedModel, TokenLogprob


class Document(Record):
    """One corpus document; `doc_id` is stable across runs (source name + index or path)."""

    doc_id: str
    source: str
    text: str


class Prefill(Record):
    """The first k tokens of a document under the target's tokenizer, as text."""

    prefill_id: str
    doc_id: str
    source: str
    text: str
    n_tokens: int


Framing = Literal["raw", "chat", "chat-user"]
"""How a prefill is put to the target (`blackbox_audit.framing`): raw text; the opening of the
assistant turn; or, for chat APIs that cannot prefill, inside the user message."""


class FramedPrefill(Record):
    """A prefill and the exact prompt the target is given (`blackbox_audit.framing`)."""

    prefill: Prefill
    framing: Framing
    prompt: Prompt


class TargetCompletion(Record):
    """What the target generated after a prefill, with the logprob of each of its own tokens.
    `prompt` is what it was given, and the context the reference scores the completion in."""

    prefill: Prefill
    framing: Framing
    prompt: Prompt
    completion: str
    tokens: tuple[TokenLogprob, ...]
    finish_reason: str | None
    served: ServedModel | None = None
    """Which model the server said answered (`model_check` compares the first and the last)."""


AlignmentStatus = Literal["exact", "widened", "empty", "unaligned"]
"""exact: both sides cover exactly the completion's bytes. widened: the reference's first token
straddles the prefill/completion boundary (its numbers cover extra context bytes, recorded in
`reference_extra_chars`). empty: nothing was generated. unaligned: the reference could not score
the completion's bytes (reason in `alignment_detail`); such records carry no gap."""


class SideStats(Record):
    """One model's view of one completion. `ppl = exp(nll_nats / n_tokens)`."""

    nll_nats: float
    n_tokens: int = Field(ge=1)
    n_bytes: int = Field(ge=1)
    ppl: float
    log_ppl: float
    bits_per_byte: float


GapName = Literal["ppl_diff", "logppl_diff", "bpb_diff", "log_bpb_ratio", "window_gap", "collapsed_window_gap"]
"""The fields of `Gaps`: one number per completion."""

ScoreName = Literal[
    "ppl_diff", "logppl_diff", "bpb_diff", "log_bpb_ratio", "window_gap", "collapsed_window_gap", "rank_average"
]
"""The rankings: a field of `Gaps`, or `rank_average`, each completion's mean rank by
`logppl_diff`, `log_bpb_ratio` and `collapsed_window_gap` within the audit
(`blackbox_audit.ranking`)."""


class Gaps(Record):
    """reference minus target, so positive means "the finetune made this text likelier".

    The first four average over the whole completion (per token, per token on a log scale,
    bits per byte, and the log of the bits-per-byte ratio); the span scores
    (`blackbox_audit.profile`, nats per byte) take its best window, the second after dropping
    the bytes that repeat an earlier stretch."""

    ppl_diff: float
    logppl_diff: float
    bpb_diff: float
    log_bpb_ratio: float
    """ln(reference bits per byte / target bits per byte): how many times more surprised the
    reference is, whatever the text's own entropy (`gap.log_bpb_ratio`)."""
    window_gap: float
    collapsed_window_gap: float


class GapProfile(Record):
    """Where the span scores' windows lie: byte offsets [start, end) into the completion's UTF-8."""

    window_bytes: int = Field(ge=1)
    window: tuple[int, int]
    collapsed_window: tuple[int, int]
    copied_bytes: int = Field(ge=0)
    """Bytes that repeat an earlier stretch, left out of `collapsed_window_gap`."""
    exact: bool
    """False when a side's token texts could not be placed on the bytes (its NLL spread evenly)."""


class NullComparison(Record):
    """Where a completion's gap falls among the gaps of a control target that was not finetuned
    (`blackbox_audit.null`): `p_value` = (1 + controls at or above it) / (1 + controls), `z` in
    the controls' standard deviations from their mean."""

    p_value: float = Field(gt=0.0, le=1.0)
    z: float
    beyond_max: bool


class CompletionResult(Record):
    """One line of results.jsonl: everything measured about one completion."""

    prefill_id: str
    doc_id: str
    source: str
    framing: Framing
    prefill: str
    completion: str
    finish_reason: str | None
    alignment: AlignmentStatus
    alignment_detail: str = ""
    reference_extra_chars: int = 0
    target: SideStats | None
    reference: SideStats | None
    gaps: Gaps | None
    degeneracy: float
    target_tokens: tuple[TokenLogprob, ...]
    reference_tokens: tuple[TokenLogprob, ...]
    same_tokens: bool | None = None
    """Whether the reference scored exactly the token ids the target generated (None: ids
    unknown). False under one tokenizer means the target's tokens were not the canonical
    tokenization of its text, so even an identical model shows a small gap."""
    profile: GapProfile | None = None
    null: NullComparison | None = None
    rank: int | None = None
    """Last, so that the spool can write it into a finished line (`spool._with_rank`)."""
