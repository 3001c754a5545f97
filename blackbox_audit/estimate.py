"""What an audit will cost at most, from the config and the corpus alone (`--dry-run`: nothing is sent).

Every "at most" is an upper bound, retries aside: it counts what connecting sends (auto-detection,
the local tokenizer's check, the shared-tokenizer probe), a tokenizer round trip for every
document the prefill stage might visit, and the one-by-one rescoring that follows a batch whose
alignment failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackbox_audit.config import AuditConfig
from blackbox_audit.corpus import load_documents
from providers.registry import connect_requests_at_most

CHAT_TEMPLATE_TOKENS = 30
"""A rough size of the system + user messages and chat markup, for the token estimates only."""
STREAM_CHUNK = 1024
"""Prefills carried through generation, scoring and measuring at a time (see `audit`)."""
SHARED_TOKENIZER_PROBE = 1
"""One /tokenize per endpoint, to know whether both sides share a tokenizer."""


@dataclass(frozen=True)
class Estimate:
    documents: int
    prefills: int
    target_requests: int
    target_prompt_tokens: int
    target_max_generated_tokens: int
    reference_requests: int
    reference_max_scored_tokens: int
    notes: tuple[str, ...]
    null_target_requests: int = 0

    def table(self) -> str:
        rows = [
            ("documents in corpus", self.documents),
            ("prefills (at most)", self.prefills),
            ("target requests (at most)", self.target_requests),
            ("target prompt tokens (about)", self.target_prompt_tokens),
            ("target generated tokens (at most)", self.target_max_generated_tokens),
            ("reference requests (at most)", self.reference_requests),
            ("reference scored tokens (at most)", self.reference_max_scored_tokens),
        ]
        if self.null_target_requests:
            rows.append(("null target requests (at most)", self.null_target_requests))
        lines = ["dry run: nothing was sent"] + [f"  {name:<36} {value:>12,}" for name, value in rows]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _batches(n: int, size: int) -> int:
    """Requests for n items sent `size` at a time, chunk by chunk of the stream."""
    full, rest = divmod(n, STREAM_CHUNK)
    return full * -(-STREAM_CHUNK // size) + -(-rest // size)


def estimate(config: AuditConfig) -> Estimate:
    documents = load_documents(config.corpus, text_field=config.text_field)
    n = len(documents) if config.limit is None else min(config.limit, len(documents))
    chat = config.framing != "raw"
    template = CHAT_TEMPLATE_TOKENS if chat else 0
    connecting = connect_requests_at_most() + SHARED_TOKENIZER_PROBE
    generation = n if chat else _batches(n, config.batch_size)
    prefill_tokenizing = 2 * len(documents)  # /tokenize + /detokenize of every document it may visit
    controls = min(config.null_prefills, n) if config.null_target is not None else 0
    scored = n + controls
    # per completion: context, continuation and the decode check, and the joint fallback's two more
    reference_tokenizing = 5 * scored
    # a batch whose alignment fails is rescored one by one
    scoring = _batches(n, config.batch_size) + _batches(controls, config.batch_size) + scored
    null_generation = (controls if chat else _batches(controls, config.batch_size)) if controls else 0
    notes = (
        "a rerun of the same audit is answered by the cache and sends no request",
        f"the target's count includes {prefill_tokenizing:,} tokenizer calls for prefills (one pair per document the"
        " prefill stage may visit) and connecting; a tokenizer in process (--*-tokenizer, auto for a vLLM server"
        " on this machine) spares the tokenizer calls but chat templates'",
        f"the reference's count includes {reference_tokenizing:,} tokenizer calls and {scoring:,} scoring calls",
        "retries are not counted",
    )
    return Estimate(
        documents=len(documents),
        prefills=n,
        target_requests=connecting + prefill_tokenizing + generation,
        target_prompt_tokens=n * (config.prefill_tokens + template),
        target_max_generated_tokens=n * config.max_new_tokens,
        reference_requests=connecting + reference_tokenizing + scoring + (SHARED_TOKENIZER_PROBE if controls else 0),
        reference_max_scored_tokens=scored * (config.prefill_tokens + template + config.max_new_tokens),
        notes=notes,
        null_target_requests=connecting + null_generation if controls else 0,
    )
