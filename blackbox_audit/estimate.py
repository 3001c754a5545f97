"""What an audit will cost at most, from the config and the corpus alone (`--dry-run`: nothing is sent).

Every "at most" is an upper bound, retries aside: it counts what connecting sends (auto-detection,
the local tokenizer's check, the shared-tokenizer probe), a tokenizer round trip for every
document the prefill stage might visit, the one-by-one rescoring that follows a batch whose
alignment failed, and the sentinel's request. Tokens are bounded per side, and priced where the
user gives prices (USD per million tokens): a user who pays per token must be able to trust
that the audit will not cost more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blackbox_audit.budget import prefills_covered
from blackbox_audit.config import AuditConfig, Price
from blackbox_audit.corpus import load_documents
from blackbox_audit.framing import Framer
from providers.registry import connect_requests_at_most

CHAT_MARKUP_TOKENS = 64
"""The chat template's own tokens around the messages (a BOS, role headers, turn markers; ChatML
spends about 11 for system, user and the assistant's opening, Llama 3 about 40 with its date
header), an allowance for the token bounds."""
RAW_SPECIAL_TOKENS = 1
"""A BOS token, which some tokenizers put before raw text."""
SCORING_OUTPUT_TOKENS = 1
"""What one scored prompt generates: services that cannot echo with max_tokens 0 generate one token."""
STREAM_CHUNK = 1024
"""Prefills carried through generation, scoring and measuring at a time (see `audit`)."""
SHARED_TOKENIZER_PROBE = 1
"""One /tokenize per endpoint, to know whether both sides share a tokenizer."""


@dataclass(frozen=True)
class Side:
    """One endpoint's bounds: requests, input (prompt) and output (generated) tokens, cost."""

    name: str
    requests: int
    input_tokens: int
    output_tokens: int
    price: Price | None = None

    @property
    def cost(self) -> float | None:
        return self.price.cost(self.input_tokens, self.output_tokens) if self.price is not None else None


@dataclass(frozen=True)
class Estimate:
    documents: int
    prefills: int
    sides: tuple[Side, ...]
    notes: tuple[str, ...] = field(default=())

    def side(self, name: str) -> Side:
        return next(s for s in self.sides if s.name == name)

    @property
    def total_cost(self) -> float | None:
        costs = [s.cost for s in self.sides if s.cost is not None]
        return sum(costs) if costs else None

    def table(self) -> str:
        rows: list[tuple[str, str]] = [
            ("documents in corpus", f"{self.documents:,}"),
            ("prefills (at most)", f"{self.prefills:,}"),
        ]
        for side in self.sides:
            rows += [
                (f"{side.name} requests (at most)", f"{side.requests:,}"),
                (f"{side.name} input tokens (at most)", f"{side.input_tokens:,}"),
                (f"{side.name} output tokens (at most)", f"{side.output_tokens:,}"),
            ]
            if side.cost is not None:
                rows.append((f"{side.name} cost USD (at most)", f"{side.cost:,.6f}"))
        if self.total_cost is not None:
            rows.append(("total cost USD (at most)", f"{self.total_cost:,.6f}"))
        lines = ["dry run: nothing was sent; every count below is an upper bound"]
        lines += [f"  {name:<38} {value:>14}" for name, value in rows]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _batches(n: int, size: int) -> int:
    """Requests for n items sent `size` at a time, chunk by chunk of the stream."""
    full, rest = divmod(n, STREAM_CHUNK)
    return full * -(-STREAM_CHUNK // size) + -(-rest // size)


def prompt_tokens_at_most(config: AuditConfig) -> int:
    """One framed prompt's tokens: the prefill's, and the messages' UTF-8 bytes (a byte-level
    tokenizer's every token spells at least one byte) plus the chat template's allowance."""
    if config.framing == "raw":
        return config.prefill_tokens + RAW_SPECIAL_TOKENS
    messages = Framer.of(config).prompt("")
    assert not isinstance(messages, str)
    return config.prefill_tokens + sum(len(m.content.encode()) for m in messages) + CHAT_MARKUP_TOKENS


def estimate(config: AuditConfig) -> Estimate:
    documents = load_documents(config.corpus, text_field=config.text_field)
    asked = len(documents) if config.limit is None else min(config.limit, len(documents))
    n = asked
    if config.max_target_tokens is not None:
        n = min(n, prefills_covered(config.max_target_tokens, config.max_new_tokens, config.sentinel))
    chat = config.framing != "raw"
    prompt = prompt_tokens_at_most(config)
    connecting = connect_requests_at_most() + SHARED_TOKENIZER_PROBE
    generation = n if chat else _batches(n, config.batch_size)
    sentinel = 1 if config.sentinel else 0
    prefill_tokenizing = 2 * len(documents)  # /tokenize + /detokenize of every document it may visit
    controls = min(config.null_prefills, n) if config.null_target is not None else 0
    scored = n + controls
    # per completion: context, continuation and the decode check, and the joint fallback's two more
    reference_tokenizing = 5 * scored
    # a batch whose alignment fails is rescored one by one: each completion may be scored twice
    scoring = _batches(n, config.batch_size) + _batches(controls, config.batch_size) + scored
    null_generation = (controls if chat else _batches(controls, config.batch_size)) if controls else 0
    sides = [
        Side(
            "target",
            requests=connecting + prefill_tokenizing + generation + sentinel,
            input_tokens=(n + sentinel) * prompt,
            output_tokens=(n + sentinel) * config.max_new_tokens,
            price=config.target.price,
        ),
        Side(
            "reference",
            requests=connecting + reference_tokenizing + scoring + (SHARED_TOKENIZER_PROBE if controls else 0),
            input_tokens=2 * scored * (prompt + config.max_new_tokens),
            output_tokens=2 * scored * SCORING_OUTPUT_TOKENS,
            price=config.reference.price,
        ),
    ]
    if controls and config.null_target is not None:
        sides.append(
            Side(
                "null target",
                requests=connecting + null_generation,
                input_tokens=controls * prompt,
                output_tokens=controls * config.max_new_tokens,
                price=config.null_target.price,
            )
        )
    notes = [
        "a rerun of the same audit is answered by the cache and sends no request but the sentinel's",
        f"the target's count includes {prefill_tokenizing:,} tokenizer calls for prefills (one pair per document the"
        " prefill stage may visit) and connecting; a tokenizer in process (--*-tokenizer, auto for a vLLM server"
        " on this machine) spares the tokenizer calls but chat templates'",
        f"the reference's count includes {reference_tokenizing:,} tokenizer calls and {scoring:,} scoring calls",
        f"input tokens: {prompt:,} per prompt ({config.prefill_tokens} prefill tokens"
        + (
            f", the messages' UTF-8 bytes and {CHAT_MARKUP_TOKENS} for the chat template)"
            if chat
            else f" and {RAW_SPECIAL_TOKENS} special token)"
        )
        + "; the reference's tokens count every completion twice (a batch that fails to align is scored again) and"
        " assume its tokenizer spends no more tokens on a text than the target's, as when both share one",
        "retries are not counted",
    ]
    if sentinel:
        notes.insert(2, "the target's counts include the sentinel's request, one prompt (--no-sentinel spares it)")
    if n < asked:
        notes.insert(0, f"--max-target-tokens {config.max_target_tokens:,} covers {n:,} of the {asked:,} prefills")
    unpriced = [s.name for s in sides if s.price is None]
    if len(unpriced) < len(sides):
        flags = ", ".join(f"--{name.replace(' ', '-')}-price" for name in unpriced)
        notes.append("costs in USD from the prices given" + (f"; no price for {flags}" if unpriced else ""))
    return Estimate(documents=len(documents), prefills=n, sides=tuple(sides), notes=tuple(notes))
