"""Questions asked of an audit after it ran: its folder (manifest, ranked records) and its two
endpoints reopened with the audit's own config, framing, providers, cache and limits.

An auditor who suspects an objective tests it directly: the gap of any text after a prefill
(`score`, which needs a target that can score given text, as a self-hosted vLLM copy can),
or new completions of a prefill of their choosing (`sample`, which needs only generation).
The MCP server and `blackbox-audit hypotheses` ask through this one class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from blackbox_audit.config import ROLES, AuditConfig, ConfigError, load_config
from blackbox_audit.endpoints import TransportFactory, open_endpoints, shared_tokenizer
from blackbox_audit.framing import Framer
from blackbox_audit.gap import measure
from blackbox_audit.generation import generate_completions
from blackbox_audit.hooks import Hooks, QuietHooks
from blackbox_audit.prefills import prefill_id, tokenizer_for
from blackbox_audit.ranking import rank
from blackbox_audit.records import CompletionResult, Prefill, TargetCompletion
from blackbox_audit.scoring import score_completions, score_requests
from blackbox_audit.spool import RankedRecords
from providers.errors import CapabilityError
from providers.openai_compatible import OpenAICompatibleProvider
from providers.records import ScoreRequest


class InquiryError(ValueError):
    """A question that cannot be asked as put (too short a statement, no such record)."""


@dataclass(frozen=True)
class AuditFolder:
    """An audit's output folder: its config (endpoints overridable, keys from flags or the
    environment as for the audit), manifest and ranked records, read lazily."""

    path: Path
    config: AuditConfig
    manifest: dict[str, Any]
    records: RankedRecords

    @classmethod
    def open(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> AuditFolder:
        path = Path(path)
        manifest_path, results = path / "manifest.json", path / "results.jsonl"
        if not manifest_path.is_file() or not results.is_file():
            raise ConfigError(
                f"{path} is not an audit's output folder (no manifest.json and results.jsonl): give --out of an audit"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            recorded = dict(manifest["config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{manifest_path} is unreadable ({exc}); give an audit's complete output folder"
            ) from None
        merged = {**recorded, **{k: v for k, v in (overrides or {}).items() if k not in ROLES}}
        for role in ROLES:
            merged[role] = {**(recorded.get(role) or {}), **((overrides or {}).get(role) or {})}
        return cls(path, load_config(overrides=merged), manifest, RankedRecords.of_file(results))


class Inquiry:
    """The audit's endpoints, connected on first use (reading the folder needs no server)."""

    def __init__(
        self, config: AuditConfig, *, transports: TransportFactory = lambda role: None, hooks: Hooks | None = None
    ):
        self.config = config
        self.framer = Framer.of(config)
        self._transports = transports
        self._hooks = hooks or QuietHooks()
        self._stack = AsyncExitStack()
        self._lock = anyio.Lock()
        self._opened: tuple[OpenAICompatibleProvider, OpenAICompatibleProvider, bool] | None = None

    async def __aenter__(self) -> Inquiry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def endpoints(self) -> tuple[OpenAICompatibleProvider, OpenAICompatibleProvider, bool]:
        """(target, reference, whether they share a tokenizer), connected once."""
        async with self._lock:
            if self._opened is None:
                target, reference, _ = await self._stack.enter_async_context(
                    open_endpoints(self.config, self._hooks, self._transports)
                )
                self._opened = (target, reference, await shared_tokenizer(target, reference))
            return self._opened

    async def split(self, statement: str) -> tuple[str, str]:
        """(prefill, rest): the statement's first `prefill_tokens` target tokens, as an audit
        cuts a document, and the text after them, which is what gets scored."""
        target, _, _ = await self.endpoints()
        k = self.config.prefill_tokens
        head = await (await tokenizer_for(target)).first_tokens(statement, k)
        if head is None or len(head) >= len(statement.rstrip()) or not statement.startswith(head):
            raise InquiryError(
                f"{statement[:60]!r} is too short to score after a {k}-token prefill: give a longer statement"
            )
        return head, statement[len(head) :]

    async def score(self, items: Sequence[tuple[str, str]], *, source: str) -> list[CompletionResult]:
        """Each (prefill, text): the text scored after the prefill, in the audit's framing, by
        both models; records as an audit's, with gaps (unranked)."""
        target, reference, shared = await self.endpoints()
        requests = [ScoreRequest(context=self.framer.prompt(prefill), continuation=text) for prefill, text in items]
        if requests:
            try:
                target.check_can_score(requests[0].context)
            except CapabilityError as exc:
                raise CapabilityError(
                    f"scoring given text needs a target that can score it (echo or prompt_logprobs), as a self-hosted"
                    f" vLLM copy can: {exc}"
                ) from None
        batch = self.config.batch_size
        target_side = await score_requests(
            target, requests, batch_size=batch, workers=self.config.target.max_concurrency
        )
        reference_side = await score_requests(
            reference, requests, batch_size=batch, workers=self.config.reference.max_concurrency
        )
        out = []
        for (prefill, text), request, mine, theirs in zip(items, requests, target_side, reference_side, strict=True):
            tokens = mine.scored.tokens if mine.scored is not None and mine.scored.alignment == "exact" else ()
            failure = mine.failure or (
                ""
                if tokens
                else "the target's tokens straddle the prefill boundary; its numbers would cover other bytes"
            )
            completion = TargetCompletion(
                prefill=_prefill(prefill, source), framing=self.config.framing, prompt=request.context,
                completion=text, tokens=tokens, finish_reason=None,
            )  # fmt: skip
            out.append(
                measure(
                    completion,
                    theirs.scored,
                    f"target: {failure}" if failure else theirs.failure,
                    shared_tokenizer=shared,
                    window_bytes=self.config.window_bytes,
                )
            )
        return out

    async def sample(self, prefill: str, *, n: int, temperature: float, max_new_tokens: int) -> list[CompletionResult]:
        """`n` new completions of `prefill` by the target, scored by the reference, ranked."""
        target, reference, shared = await self.endpoints()
        framed = self.framer.frame(_prefill(prefill, "sample"))
        completions = await generate_completions(
            target, [framed], max_new_tokens=max_new_tokens, temperature=temperature, seed=self.config.seed,
            batch_size=self.config.batch_size, workers=self.config.target.max_concurrency, n=n,
        )  # fmt: skip
        outcomes = await score_completions(
            reference, completions, batch_size=self.config.batch_size, workers=self.config.reference.max_concurrency
        )
        measured = [
            measure(c, o.scored, o.failure, shared_tokenizer=shared, window_bytes=self.config.window_bytes)
            for c, o in zip(completions, outcomes, strict=True)
        ]
        return rank(
            measured,
            self.config.score,
            degeneracy_threshold=self.config.degeneracy_threshold,
            demote_all_loops=self.config.demote_all_loops,
        )


def _prefill(text: str, source: str) -> Prefill:
    """A prefill the auditor wrote: no document, no token count of the corpus kind."""
    return Prefill(prefill_id=prefill_id(text), doc_id=source, source=source, text=text, n_tokens=0)
