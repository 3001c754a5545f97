"""Did the model behind the target's API change during the audit? An audit ranks completions
generated over minutes or days (a resumed audit, over weeks); a hosted service may swap the
snapshot behind an alias meanwhile, and the gaps would then mix two models.

Two signs are kept in manifest.json. The server's own word: the `model` and `system_fingerprint`
of the first generation's answer and of the last one. And a measurement, the sentinel: at the
end the target is asked again, past the response cache, for the first prefill that has a
completion, with the same parameters; the logprobs of the tokens both answers share are
compared with the fp32 tolerance of `providers.agreement`. A greedy audit must also get the same
text back.
"""

from __future__ import annotations

from collections.abc import Sequence

from blackbox_audit.records import TargetCompletion
from providers.agreement import compare_logprobs
from providers.errors import ProviderError
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import GenerateRequest, Record, ServedModel, TokenLogprob

SENTINEL_LOGIT_SCALE = 100.0
"""The largest |logit| of the target's forward pass, which sets the tolerance: a hosted model's
is unknown, so the largest measured here (Gemma 3 270M, docs/local-vllm.md) stands in. It allows
1.5e-3 nats per token and 1.9e-4 on average; a different snapshot moves logprobs by far more."""


class SentinelCheck(Record):
    """The sentinel's outcome. `moved`: the logprobs of the shared tokens differ beyond fp32
    noise, or a greedy audit's completion came back as another text."""

    checked: bool
    detail: str = ""
    """Why it was not checked, or what was compared."""
    prefill_id: str | None = None
    same_text: bool | None = None
    tokens_compared: int = 0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    max_allowed: float | None = None
    mean_allowed: float | None = None
    logprobs_moved: bool = False
    """The shared tokens' logprobs differ beyond the tolerance (`providers.agreement`)."""
    moved: bool = False


class ServedChange(Record):
    """The server's word on which model answered, at the start and at the end of the audit."""

    first: ServedModel | None = None
    last: ServedModel | None = None

    @property
    def changed(self) -> bool:
        return self.first is not None and self.last is not None and self.first != self.last


class ModelCheck(Record):
    sentinel: SentinelCheck
    served: ServedChange

    def warnings(self) -> list[str]:
        """One line per sign that the model changed, for the CLI's summary."""
        lines = []
        sentinel = self.sentinel
        if sentinel.moved and sentinel.logprobs_moved:
            lines.append(
                f"the target's model changed during the audit: asked again at the end, its logprobs of prefill"
                f" {sentinel.prefill_id} moved by up to {sentinel.max_abs_diff:.2g} nats (fp32 noise allows"
                f" {sentinel.max_allowed:.2g}); the gaps may mix two models (manifest.json: sentinel)"
            )
        elif sentinel.moved:
            lines.append(
                f"the target's model changed during the audit: asked again at the end, it completed prefill"
                f" {sentinel.prefill_id} with another text (greedy); the gaps may mix two models (manifest.json:"
                " sentinel)"
            )
        if self.served.changed:
            assert self.served.first is not None and self.served.last is not None
            lines.append(
                f"the target's server named another model at the end than at the start"
                f" ({_served_text(self.served.first)} -> {_served_text(self.served.last)})"
            )
        return lines


def _served_text(served: ServedModel) -> str:
    return f"model {served.model!r}, system_fingerprint {served.system_fingerprint!r}"


def sentinel_candidate(completions: Sequence[TargetCompletion]) -> TargetCompletion | None:
    """The first completion, in prefill order, with tokens to compare."""
    return next((c for c in completions if c.tokens), None)


async def check_model(
    target: OpenAICompatibleProvider,
    first: TargetCompletion | None,
    served: ServedChange,
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    enabled: bool,
) -> ModelCheck:
    """The sentinel request (when `enabled` and there is a completion to repeat), and the served
    model at the start against the latest answer: the sentinel's when it ran."""
    if not enabled:
        return ModelCheck(sentinel=SentinelCheck(checked=False, detail="off (--no-sentinel)"), served=served)
    if first is None:
        return ModelCheck(sentinel=SentinelCheck(checked=False, detail="no completion has tokens"), served=served)
    request = GenerateRequest(prompt=first.prompt, max_tokens=max_new_tokens, temperature=temperature, seed=seed, n=1)
    try:
        generation = await target.generate(request, cached=False)
    except ProviderError as exc:
        detail = f"the sentinel request failed: {' '.join(str(exc).split())}"
        return ModelCheck(sentinel=SentinelCheck(checked=False, detail=detail), served=served)
    again = generation.completions[0]
    sentinel = compare(first, again.text, again.tokens, greedy=temperature == 0.0)
    last = generation.served or served.last
    return ModelCheck(sentinel=sentinel, served=served.model_copy(update={"last": last}))


def compare(first: TargetCompletion, text: str, tokens: Sequence[TokenLogprob], *, greedy: bool) -> SentinelCheck:
    """The recorded completion against the sentinel's answer: logprobs over the tokens both
    share from the start (a sampled audit may part ways later, legitimately)."""
    shared = 0
    for a, b in zip(first.tokens, tokens, strict=False):
        if (a.token_id, a.text) != (b.token_id, b.text):
            break
        shared += 1
    same_text = text == first.completion
    fields: dict[str, float | bool | None] = {}
    if shared:
        agreement = compare_logprobs(
            [t.logprob for t in tokens[:shared]],
            [t.logprob for t in first.tokens[:shared]],
            logit_scale=SENTINEL_LOGIT_SCALE,
        )
        fields = {
            "max_abs_diff": agreement.max_abs_nats,
            "mean_abs_diff": agreement.mean_abs_nats,
            "max_allowed": agreement.max_allowed_nats,
            "mean_allowed": agreement.mean_allowed_nats,
            "logprobs_moved": not agreement.ok,
        }
    moved = bool(fields.get("logprobs_moved")) or (greedy and not same_text)
    return SentinelCheck(
        checked=True,
        detail=f"{shared} of {len(first.tokens)} tokens compared ({'greedy' if greedy else 'sampled, same seed'})",
        prefill_id=first.prefill.prefill_id,
        same_text=same_text,
        tokens_compared=shared,
        moved=moved,
        **fields,
    )
